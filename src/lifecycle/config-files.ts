/**
 * The files a valid configuration names, checked as `sidecar run` will read them, so that
 * `sidecar validate` and `run` agree: every TLS certificate, key and client CA (read and
 * checked by the same loadTlsMaterial that a listener uses: PEM, cert/key pair), and the
 * access log file (writable, or creatable: nothing is created here).
 *
 * Errors name the field's path and, when the YAML file can be read, its line.
 */

import fs from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { formatPath, type ConfigError } from '../config/load';
import type { SidecarConfig, TlsConfig } from '../config/types';
import { loadTlsMaterial, TlsConfigError } from '../tls/context';

type Segment = string | number;

interface FileProblem {
  readonly path: readonly Segment[];
  readonly message: string;
}

/** Every problem with the files `config` names; [] when `run` can read them all. */
export function checkConfigFiles(config: SidecarConfig): ConfigError[] {
  const problems: FileProblem[] = [];
  config.listeners.forEach((listener, i) => {
    if (listener.tls !== undefined) problems.push(...checkTlsFiles(listener.tls, ['listeners', i, 'tls']));
  });
  config.clusters.forEach((cluster) => {
    const tls = cluster.tls;
    if (tls === undefined) return;
    const index = [...config.clusters.keys()].indexOf(cluster.name);
    const files: [string, string | undefined][] = [['ca', tls.caPath], ['cert', tls.certPath], ['key', tls.keyPath]];
    for (const [field, file] of files) {
      const problem = file === undefined ? undefined : readProblem(file);
      if (problem !== undefined) problems.push({ path: ['clusters', index, 'tls', field], message: `${file}: ${problem}` });
    }
  });
  const accessLog = LOG_STREAMS.has(config.accessLog.path) ? undefined : checkAccessLog(config.accessLog.path);
  if (accessLog !== undefined) problems.push({ path: ['accessLog', 'path'], message: accessLog });
  return locate(config.source, problems);
}

function checkTlsFiles(tls: TlsConfig, at: readonly Segment[]): FileProblem[] {
  const files: { field: readonly Segment[]; file: string; kind: 'certificate' | 'key' | 'ca' }[] = [
    { field: ['cert'], file: tls.certPath, kind: 'certificate' },
    { field: ['key'], file: tls.keyPath, kind: 'key' },
    ...tls.sni.flatMap((entry, i) => [
      { field: ['sni', i, 'cert'], file: entry.certPath, kind: 'certificate' as const },
      { field: ['sni', i, 'key'], file: entry.keyPath, kind: 'key' as const },
    ]),
    ...(tls.clientCaPath === undefined ? [] : [{ field: ['clientCa'], file: tls.clientCaPath, kind: 'ca' as const }]),
  ];
  // Every unreadable file is reported at once; the contents are checked once all can be read.
  const unreadable: FileProblem[] = [];
  for (const { field, file, kind } of files) {
    const problem = readProblem(file);
    if (problem === undefined) continue;
    const hint = problem === 'file not found' && kind !== 'ca' ? `; to create a local CA and certificates: sidecar certs --out ${path.dirname(file)} --host NAME` : '';
    unreadable.push({ path: [...at, ...field], message: `${file}: ${problem}${hint}` });
  }
  if (unreadable.length > 0) return unreadable;
  try {
    loadTlsMaterial(tls);
    return [];
  } catch (error) {
    if (!(error instanceof TlsConfigError)) throw error;
    return [{ path: [...at, ...fieldPath(error.field)], message: `${error.file}: ${error.message.slice(`tls.${error.field}: ${error.file}: `.length)}` }];
  }
}

/** `sni[1].cert` → ['sni', 1, 'cert']. */
function fieldPath(field: string): Segment[] {
  return field.split('.').flatMap((part) => {
    const m = /^(\w+)\[(\d+)\]$/.exec(part);
    return m === null ? [part] : [m[1], Number(m[2])];
  });
}

function readProblem(file: string): string | undefined {
  try {
    if (!fs.statSync(file).isFile()) return 'is not a file';
    fs.accessSync(file, fs.constants.R_OK);
    return undefined;
  } catch (error) {
    return errnoText(error, 'cannot read');
  }
}

const LOG_STREAMS = new Set(['stdout', 'stderr', 'off']);

/**
 * The access log is opened for appending, its folder created if missing (line-writer.ts):
 * the file must be writable, or else the nearest existing folder above it.
 */
function checkAccessLog(file: string): string | undefined {
  try {
    if (fs.statSync(file).isDirectory()) return `${file}: is a folder, not a file`;
    fs.accessSync(file, fs.constants.W_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') return `${file}: ${errnoText(error, 'cannot write')}`;
  }
  let folder = path.dirname(file);
  while (!fs.existsSync(folder) && path.dirname(folder) !== folder) folder = path.dirname(folder);
  try {
    if (!fs.statSync(folder).isDirectory()) return `${file}: cannot be created: ${folder} is not a folder`;
    fs.accessSync(folder, fs.constants.W_OK);
    return undefined;
  } catch (error) {
    return `${file}: cannot be created in ${folder}: ${errnoText(error, 'cannot write')}`;
  }
}

function errnoText(error: unknown, verb: string): string {
  switch ((error as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'file not found';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    default:
      return `${verb}: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/** Adds the line of each problem's field, from the YAML file when it can be read again. */
function locate(source: string, problems: readonly FileProblem[]): ConfigError[] {
  if (problems.length === 0) return [];
  let find = (_path: readonly Segment[]): { line: number; col: number } | undefined => undefined;
  try {
    const lineCounter = new LineCounter();
    const doc = parseDocument(fs.readFileSync(source, 'utf8'), { lineCounter });
    find = (at) => {
      const node = doc.getIn(at, true) as { range?: [number, number, number] } | undefined;
      return node?.range === undefined ? undefined : lineCounter.linePos(node.range[0]);
    };
  } catch {
    // An embedded configuration, or a file changed since: errors without a line.
  }
  return problems.map((p) => {
    const pos = find(p.path);
    return { path: formatPath(p.path), line: pos?.line, ...(pos === undefined ? {} : { column: pos.col }), message: p.message };
  });
}
