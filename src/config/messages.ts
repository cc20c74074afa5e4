/**
 * What the loader says: the error type it returns, how errors and paths are written, the
 * messages for schema issues (with "did you mean" for unknown keys), and the one-line summary.
 */
import { z } from 'zod';
import { configJsonSchema } from './json-schema';
import { isRecord } from './plain-data';
import { show } from './schema';
import type { SidecarConfig, TracingExporter } from './types';

export interface ConfigError {
  /** Where in the document, e.g. `listeners[0].routes[1].retry.perTryTimeout`; '' for the whole file. */
  readonly path: string;
  /** 1-based line of the YAML node the error is about; undefined when there is none (file not readable). */
  readonly line: number | undefined;
  /** 1-based column. */
  readonly column?: number;
  readonly message: string;
}

export type Segment = string | number;
export type PathSegments = readonly Segment[];

export interface PendingError {
  readonly path: PathSegments;
  readonly message: string;
  /** Point at the key of the last segment rather than its value (unknown and duplicate keys). */
  readonly atKey?: boolean;
  /** A known position (YAML parser errors), used instead of the path's node. */
  readonly offset?: number;
}

/** `file:line:column path: message`, one error per line, in file order. */
export function formatConfigErrors(file: string, errors: readonly ConfigError[]): string {
  return errors
    .map((e) => {
      const where = e.line === undefined ? file : `${file}:${e.line}${e.column === undefined ? '' : `:${e.column}`}`;
      return e.path === '' ? `${where} ${e.message}` : `${where} ${e.path}: ${e.message}`;
    })
    .join('\n');
}

/**
 * One line for logs and `sidecar validate`, e.g. `ok: 2 listeners, 5 routes, 2 clusters (4 endpoints), tracing otlp-http`.
 * `tracingExporter`: the effective exporter when the caller knows it (the OTEL_* variables can
 * change it, see telemetry/tracing-settings.ts); the file's otherwise.
 */
export function summarizeConfig(config: SidecarConfig, tracingExporter: TracingExporter = config.tracing.exporter): string {
  const routes = config.listeners.reduce((n, l) => n + l.routes.length, 0);
  let endpoints = 0;
  for (const cluster of config.clusters.values()) endpoints += cluster.endpoints.length;
  const tracing = tracingExporter === 'none' ? 'tracing off' : `tracing ${tracingExporter}`;
  return (
    `ok: ${plural(config.listeners.length, 'listener')}, ${plural(routes, 'route')}, ` +
    `${plural(config.clusters.size, 'cluster')} (${plural(endpoints, 'endpoint')}), ${tracing}`
  );
}

/** `listeners[0].routes[1].match.headers["x y"]`. */
export function formatPath(path: PathSegments): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z0-9_$-]+$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

const EXPECTED_TEXT: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'a mapping (key: value)',
  array: 'a list',
};

function kindOf(value: unknown): string {
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (ArrayBuffer.isView(value)) return 'binary data';
  if (value instanceof Date) return 'a timestamp';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string ${show(value)}`;
  if (typeof value === 'number') return `the number ${value}`;
  return String(value);
}

/** Messages for issues whose schema did not set its own text. */
export const genericMessage: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type': {
      if (issue.input === undefined) return 'required field is missing';
      const expected = EXPECTED_TEXT[issue.expected] ?? issue.expected;
      const hint =
        issue.expected === 'string' && (typeof issue.input === 'number' || typeof issue.input === 'boolean')
          ? ` (quote it: "${String(issue.input)}")`
          : '';
      return `expected ${expected}, got ${kindOf(issue.input)}${hint}`;
    }
    case 'invalid_value':
      return `invalid value ${show(issue.input)}: expected one of ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'too_small': {
      const min = Number(issue.minimum);
      if (issue.origin === 'array') return `needs at least ${plural(min, 'item')}`;
      if (issue.origin === 'string') return min === 1 ? 'cannot be empty' : `must be at least ${min} characters`;
      return issue.inclusive === false ? `must be greater than ${min}` : `must be at least ${min}`;
    }
    case 'too_big': {
      const max = Number(issue.maximum);
      if (issue.origin === 'array') return `takes at most ${plural(max, 'item')}`;
      if (issue.origin === 'string') return `must be at most ${max} characters`;
      return issue.inclusive === false ? `must be less than ${max}` : `must be at most ${max}`;
    }
    case 'invalid_key':
      return `invalid key ${show(issue.input)}`;
    case 'invalid_union':
      return `invalid value ${show(issue.input)}`;
    default:
      return undefined;
  }
};

export function zodIssuesToPending(issues: readonly z.core.$ZodIssue[]): PendingError[] {
  const out: PendingError[] = [];
  for (const issue of issues) {
    const path = issue.path.map((s) => (typeof s === 'number' ? s : String(s)));
    if (issue.code === 'unrecognized_keys') {
      const allowed = allowedKeysAt(path);
      for (const key of issue.keys) {
        out.push({ path: [...path, key], atKey: true, message: unknownKeyMessage(key, allowed, path) });
      }
    } else if (issue.code === 'invalid_key' && issue.issues.length > 0) {
      // A record key (header name) that failed its own schema: its message says why.
      out.push({ path, atKey: true, message: issue.issues[0].message });
    } else {
      out.push({ path, message: issue.message });
    }
  }
  return out;
}

function unknownKeyMessage(key: string, allowed: readonly string[], path: PathSegments): string {
  const close = (key.length > 64 ? [] : allowed)
    .map((k) => ({ k, d: editDistance(key.toLowerCase(), k.toLowerCase()) }))
    .filter(({ k, d }) => d <= Math.max(1, Math.floor(k.length / 3)))
    .sort((a, b) => a.d - b.d);
  if (close.length > 0) return `unknown key ${show(key)} (did you mean "${close[0].k}"?)`;
  const misplaced = misplacedKeyHint(key, path);
  if (misplaced !== undefined) return misplaced;
  return allowed.length > 0 ? `unknown key ${show(key)}; allowed here: ${allowed.join(', ')}` : `unknown key ${show(key)}`;
}

/**
 * A key the schema knows one level up or one level down from where it was found is most
 * likely indented wrong (YAML nests by indentation alone): say where it belongs.
 */
function misplacedKeyHint(key: string, path: PathSegments): string | undefined {
  const here = path.length === 0 ? 'the top level' : formatPath(path);
  // One level down: a child object of this one, or each entry of a child list.
  for (const child of allowedKeysAt(path)) {
    if (allowedKeysAt([...path, child]).includes(key)) {
      return `unknown key ${show(key)} in ${here}: it is a key of ${formatPath([...path, child])}; indent it under "${child}:"`;
    }
    if (allowedKeysAt([...path, child, 0]).includes(key)) {
      return `unknown key ${show(key)} in ${here}: it is a key of each entry of ${formatPath([...path, child])}; indent it under an entry ("- ...") of "${child}:"`;
    }
  }
  // One level up: the object holding this one (past a list index).
  let up = path.length;
  if (up > 0 && typeof path[up - 1] === 'number') up--;
  if (up > 0) {
    const parent = path.slice(0, up - 1);
    if (allowedKeysAt(parent).includes(key)) {
      const where = parent.length === 0 ? 'the top level' : formatPath(parent);
      return `unknown key ${show(key)} in ${here}: it is a key of ${where}; indent it less, level with "${String(path[up - 1])}:"`;
    }
  }
  return undefined;
}

/** The keys the schema allows at an object path, read from the JSON Schema (plain data, easy to walk). */
let schemaForSuggestions: unknown;

function allowedKeysAt(path: PathSegments): string[] {
  schemaForSuggestions ??= configJsonSchema();
  let node: unknown = schemaForSuggestions;
  for (const segment of path) {
    if (!isRecord(node)) return [];
    node = typeof segment === 'number' ? node.items : isRecord(node.properties) ? node.properties[segment] : undefined;
  }
  return isRecord(node) && isRecord(node.properties) ? Object.keys(node.properties) : [];
}

/** Edits (insert, delete, substitute, swap two neighbours) between two strings: `retyr` is 1 from `retry`. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function describeReadError(file: string, err: unknown): string {
  const code = isRecord(err) && typeof err.code === 'string' ? err.code : undefined;
  switch (code) {
    case 'ENOENT':
      return `config file ${file} does not exist`;
    case 'EACCES':
    case 'EPERM':
      return `config file ${file} is not readable (permission denied)`;
    case 'EISDIR':
      return `config file ${file} is a directory, not a file`;
    default:
      return `cannot read config file ${file}: ${errorText(err)}`;
  }
}
