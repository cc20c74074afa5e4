/**
 * Reading the files of examples/ the way their tools do: YAML documents (several per file,
 * merge keys as docker compose resolves them), route files compiled by the sidecar's own
 * loader, and the CLI as users run it.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { formatConfigErrors, loadConfigFile } from '../../src/config/load';
import type { SidecarConfig } from '../../src/config/types';
import { closedPort } from './upstream';
import { simpleConfig, startSidecar } from './sidecar';

export const ROOT = path.join(__dirname, '..', '..');
export const EXAMPLES = path.join(ROOT, 'examples');
export const CLI = path.join(ROOT, 'dist', 'cli.js');
export const SCHEMA_FILE = path.join(ROOT, 'sidecar.schema.json');

/** A parsed YAML value: what `yaml` returns for plain documents. */
export type Yaml = null | boolean | number | string | Yaml[] | { [key: string]: Yaml };
export type YamlMap = { [key: string]: Yaml };

export const isMap = (value: Yaml | undefined): value is YamlMap =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
export const asMap = (value: Yaml | undefined): YamlMap => (isMap(value) ? value : {});
export const asList = (value: Yaml | undefined): Yaml[] => (Array.isArray(value) ? value : []);
export const asMaps = (value: Yaml | undefined): YamlMap[] => asList(value).filter(isMap);
export const asString = (value: Yaml | undefined): string | undefined => (typeof value === 'string' ? value : undefined);
export const asStrings = (value: Yaml | undefined): string[] => asList(value).filter((v): v is string => typeof v === 'string');

/** Every YAML file under examples/, relative to the repository root, sorted. */
export function exampleYamlFiles(dir = EXAMPLES): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...exampleYamlFiles(full));
    else if (/\.ya?ml$/.test(entry.name)) found.push(path.relative(ROOT, full));
  }
  return found.sort();
}

/** All documents of a file; throws with the file name and the parser's message on a syntax error. */
export function readYamlDocuments(file: string): Yaml[] {
  const text = readFileSync(path.resolve(ROOT, file), 'utf8');
  return parseAllDocuments(text, { merge: true }).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    return doc.toJS({ maxAliasCount: 100 }) as Yaml;
  });
}

export function readYaml(file: string): YamlMap {
  const docs = readYamlDocuments(file);
  if (docs.length !== 1 || !isMap(docs[0])) throw new Error(`${file}: expected one mapping document`);
  return docs[0];
}

export type YamlKind = 'route-file' | 'kubernetes' | 'compose';

/** What a YAML file of examples/ is, by its content; undefined when it is none of them. */
export function classify(file: string): YamlKind | undefined {
  const docs = readYamlDocuments(file).filter((d) => d !== null);
  if (docs.length === 0) return undefined;
  if (docs.length === 1 && isMap(docs[0]) && 'listeners' in docs[0]) return 'route-file';
  if (docs.length === 1 && isMap(docs[0]) && 'services' in docs[0]) return 'compose';
  if (docs.every((d) => isMap(d) && typeof d.apiVersion === 'string' && typeof d.kind === 'string')) return 'kubernetes';
  return undefined;
}

/** A route file compiled by the sidecar's loader (durations in ms, ports as numbers). */
export async function compiledConfig(file: string): Promise<SidecarConfig> {
  const result = await loadConfigFile(path.resolve(ROOT, file));
  if (!result.ok) throw new Error(formatConfigErrors(file, result.errors));
  return result.config;
}

export function sidecarCli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The `# yaml-language-server: $schema=...` target of a file's first line, resolved; undefined without one. */
export function modelineSchema(file: string): string | undefined {
  const first = readFileSync(path.resolve(ROOT, file), 'utf8').split('\n', 1)[0];
  const m = /^# yaml-language-server: \$schema=(\S+)$/.exec(first);
  return m ? path.resolve(path.dirname(path.resolve(ROOT, file)), m[1]) : undefined;
}

/** "40s", "1m30s", "35" (compose and systemd style) → seconds. */
export function durationSeconds(text: string | number): number {
  if (typeof text === 'number') return text;
  const units: Record<string, number> = { h: 3600, m: 60, min: 60, s: 1, ms: 0.001, us: 0.000001 };
  const parts = [...text.trim().matchAll(/(\d+(?:\.\d+)?)\s*(h|min|ms|us|m|s)?/g)];
  if (parts.length === 0) throw new Error(`not a duration: ${text}`);
  return parts.reduce((sum, m) => sum + Number(m[1]) * units[m[2] ?? 's'], 0);
}

/** The value following a flag in an argument list (`-c FILE`, `--port 3000`). */
export function flagValue(args: readonly string[], ...flags: string[]): string | undefined {
  const at = args.findIndex((a) => flags.includes(a));
  return at >= 0 ? args[at + 1] : undefined;
}

/** Asks a real sidecar which admin paths answer 200 to GET (probes must hit one of them). */
export async function adminPathsAnswering(paths: readonly string[]): Promise<Map<string, number>> {
  const running = await startSidecar(simpleConfig(`http://127.0.0.1:${await closedPort()}`));
  try {
    const statuses = new Map<string, number>();
    for (const p of new Set(paths)) {
      const res = await fetch(running.adminUrl + p);
      await res.arrayBuffer();
      statuses.set(p, res.status);
    }
    return statuses;
  } finally {
    await running.close();
  }
}
