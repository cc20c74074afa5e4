/**
 * Loading a configuration file: YAML → validated document → frozen runtime snapshot.
 *
 * Contract:
 * - Nothing here throws for bad input. Any text gives either a snapshot or a list of
 *   errors; an unexpected exception becomes an "internal error" entry instead of escaping
 *   (so a reload can never crash the process, and a fuzzer can tell the two apart).
 * - Every error is reported at once, each with its path (`listeners[0].routes[1].timeout`)
 *   and the 1-based line of the YAML node it is about: syntax errors, schema errors and
 *   cross-field errors alike.
 * - The snapshot is deep-frozen and has every default applied (see defaults.ts).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import * as nodePath from 'node:path';
import {
  type Document,
  LineCounter,
  type Node as YamlNode,
  type YAMLError,
  isAlias,
  isCollection,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  parseDocument,
  visit,
} from 'yaml';
import { z } from 'zod';
import { isLoopbackHost, parseCidr } from './cidr';
import * as D from './defaults';
import { configJsonSchema } from './json-schema';
import { compileRouteRegex, isRouteRegex } from './route-regex';
import {
  type ClusterDocument,
  type ConfigDocument,
  type HostPort,
  type ListenerDocument,
  type RouteDocument,
  configSchema,
  parseAddress,
  parseEndpointUrl,
  show,
} from './schema';
import type {
  AdminConfig,
  CidrBlock,
  ClusterConfig,
  HeaderMutation,
  ListenerConfig,
  RetryOn,
  RetryPolicy,
  RouteConfig,
  RouteMatch,
  SidecarConfig,
  TracingConfig,
} from './types';
import { parseDurationMs, parseSizeBytes } from './units';

export interface ConfigError {
  /** Where in the document, e.g. `listeners[0].routes[1].retry.perTryTimeout`; '' for the whole file. */
  readonly path: string;
  /** 1-based line of the YAML node the error is about; undefined when there is none (file not readable). */
  readonly line: number | undefined;
  /** 1-based column. */
  readonly column?: number;
  readonly message: string;
}

export type LoadResult =
  | { readonly ok: true; readonly config: SidecarConfig }
  | { readonly ok: false; readonly errors: readonly ConfigError[] };

/** `source` of a snapshot that was not read from a file; relative paths then resolve against the working directory. */
export const EMBEDDED_SOURCE = '<embedded>';

/** Aliases allowed when expanding the document: a few are handy, thousands are a "billion laughs". */
const MAX_ALIAS_COUNT = 100;

type Segment = string | number;
type PathSegments = readonly Segment[];

interface PendingError {
  readonly path: PathSegments;
  readonly message: string;
  /** Point at the key of the last segment rather than its value (unknown and duplicate keys). */
  readonly atKey?: boolean;
  /** A known position (YAML parser errors), used instead of the path's node. */
  readonly offset?: number;
}

// ---------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------

/** Reads and compiles a configuration file. Never rejects. */
export async function loadConfigFile(file: string): Promise<LoadResult> {
  let absolute = String(file);
  try {
    absolute = nodePath.resolve(absolute);
    const bytes = await readFile(absolute);
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      return failure([{ path: '', line: undefined, message: `config file ${absolute} is not valid UTF-8 text` }]);
    }
    return compileText(text, absolute, sha256(bytes));
  } catch (err) {
    return failure([{ path: '', line: undefined, message: describeReadError(absolute, err) }]);
  }
}

/**
 * Compiles configuration text. `sourcePath` names the file the text came from (relative
 * paths inside resolve against its folder), or EMBEDDED_SOURCE.
 */
export function parseConfigText(text: string, sourcePath: string): LoadResult {
  try {
    if (typeof text !== 'string') {
      return failure([{ path: '', line: undefined, message: 'the configuration must be text' }]);
    }
    const source = sourcePath === EMBEDDED_SOURCE ? EMBEDDED_SOURCE : nodePath.resolve(String(sourcePath));
    return compileText(text, source, sha256(Buffer.from(text, 'utf8')));
  } catch (err) {
    return internalError(err);
  }
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

/** One line for logs and `sidecar validate`, e.g. `ok: 2 listeners, 5 routes, 2 clusters (4 endpoints), tracing otlp-http`. */
export function summarizeConfig(config: SidecarConfig): string {
  const routes = config.listeners.reduce((n, l) => n + l.routes.length, 0);
  let endpoints = 0;
  for (const cluster of config.clusters.values()) endpoints += cluster.endpoints.length;
  const tracing = config.tracing.exporter === 'none' ? 'tracing off' : `tracing ${config.tracing.exporter}`;
  return (
    `ok: ${plural(config.listeners.length, 'listener')}, ${plural(routes, 'route')}, ` +
    `${plural(config.clusters.size, 'cluster')} (${plural(endpoints, 'endpoint')}), ${tracing}`
  );
}

// ---------------------------------------------------------------------------------------
// Pipeline
// ---------------------------------------------------------------------------------------

function compileText(text: string, source: string, hash: string): LoadResult {
  try {
    const lineCounter = new LineCounter();
    const doc = parseDocument(text, {
      lineCounter,
      prettyErrors: false,
      uniqueKeys: true,
      merge: true,
      // Not 'silent': that also drops the "multiple documents" error. Warnings are collected, never printed.
      logLevel: 'error',
    });
    const locate = (e: PendingError): ConfigError => locateError(doc, lineCounter, e);

    // Syntax errors make the rest of the tree unreliable: report them alone. Duplicate keys
    // leave a well-formed tree (the last value wins), so validation goes on after them.
    const yamlErrors = [...doc.errors, ...doc.warnings];
    const pending: PendingError[] = yamlErrors.map((e) => yamlErrorToPending(doc, e));
    if (yamlErrors.some((e) => e.code !== 'DUPLICATE_KEY')) return failure(pending.map(locate));

    const complexKeys = findNonScalarKeys(doc);
    if (complexKeys.length > 0) return failure([...pending, ...complexKeys].map(locate));

    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      const message =
        err instanceof ReferenceError
          ? `too many alias expansions (more than ${MAX_ALIAS_COUNT}); write the values out`
          : `cannot read the YAML document: ${errorText(err)}`;
      return failure([...pending, { path: [], message }].map(locate));
    }
    if (value === null || value === undefined) {
      return failure([{ path: '', line: 1, column: 1, message: 'the file is empty: a configuration needs at least `listeners`' }]);
    }

    const parsed = configSchema.safeParse(value, { error: genericMessage });
    if (!parsed.success) pending.push(...zodIssuesToPending(parsed.error.issues));
    pending.push(...crossCheck(value, (path) => locate({ path, message: '' }).line));

    if (pending.length > 0 || !parsed.success) return failure(pending.map(locate));
    return { ok: true, config: deepFreeze(compile(parsed.data, source, hash)) };
  } catch (err) {
    return internalError(err);
  }
}

function failure(errors: ConfigError[]): LoadResult {
  const seen = new Set<string>();
  const unique = errors.filter((e) => {
    const key = `${e.line}\u0000${e.path}\u0000${e.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  unique.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.column ?? 0) - (b.column ?? 0));
  return { ok: false, errors: unique };
}

function internalError(err: unknown): LoadResult {
  if (err instanceof RangeError && /call stack/i.test(err.message)) {
    return failure([{ path: '', line: undefined, message: 'the document is nested too deeply' }]);
  }
  return failure([{ path: '', line: undefined, message: `internal error while loading the configuration: ${errorText(err)}` }]);
}

// ---------------------------------------------------------------------------------------
// YAML positions
// ---------------------------------------------------------------------------------------

function yamlErrorToPending(doc: Document, e: YAMLError): PendingError {
  const offset = e.pos[0];
  const path = pathAtOffset(doc, offset);
  if (e.code === 'DUPLICATE_KEY') {
    const key = path.length > 0 ? String(path[path.length - 1]) : '';
    return { path, offset, message: `duplicate key ${show(key)}: each key may appear once in a mapping` };
  }
  if (e.code === 'MULTIPLE_DOCS') {
    return { path: [], offset, message: 'the file holds more than one YAML document (---); a configuration is one document' };
  }
  const firstLine = e.message.split('\n')[0];
  return { path, offset, message: `YAML: ${firstLine}` };
}

/** Keys like `? [a, b]` have no place in this format and cannot become object keys faithfully. */
function findNonScalarKeys(doc: Document): PendingError[] {
  const found: PendingError[] = [];
  visit(doc, {
    Pair(_key, pair) {
      if (pair.key !== null && !isScalar(pair.key) && isNode(pair.key) && pair.key.range) {
        const offset = pair.key.range[0];
        found.push({ path: pathAtOffset(doc, offset), offset, message: 'keys must be plain strings, not lists or mappings' });
      }
    },
  });
  return found;
}

function nodeStart(node: unknown): number | undefined {
  return isNode(node) && node.range ? node.range[0] : undefined;
}

/** Finds the pair whose scalar key equals `segment` in a mapping. */
function findPair(map: YamlNode, segment: Segment) {
  if (!isMap(map)) return undefined;
  return map.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
}

/**
 * The offset an error about `path` should point at: the deepest node of the path that
 * exists. Collections and missing values point at their key (the `retry:` line, not the
 * first line inside it); scalars at the value itself.
 */
function offsetOfPath(doc: Document, path: PathSegments, atKey: boolean): number | undefined {
  let node: unknown = doc.contents;
  let offset = nodeStart(node);
  for (let i = 0; i < path.length; i++) {
    if (isAlias(node)) node = node.resolve(doc);
    const segment = path[i];
    if (isMap(node)) {
      const pair = findPair(node, segment);
      if (!pair) break;
      const keyOffset = nodeStart(pair.key);
      const value = pair.value;
      const last = i === path.length - 1;
      if (last && atKey) return keyOffset ?? offset;
      if (value === null || !isNode(value) || isCollection(value) || isAlias(value) || (isScalar(value) && value.value === null)) {
        offset = keyOffset ?? offset;
      } else {
        offset = nodeStart(value) ?? keyOffset ?? offset;
      }
      node = value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment];
      if (item === undefined || item === null) break;
      offset = nodeStart(item) ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

/** The path of the innermost key or item whose range holds `offset` (for parser errors). */
function pathAtOffset(doc: Document, offset: number): Segment[] {
  const path: Segment[] = [];
  let node: unknown = doc.contents;
  const holds = (n: unknown): boolean => isNode(n) && !!n.range && n.range[0] <= offset && offset <= n.range[2];
  // Deep enough for any real file; keeps paths of pathological nesting short.
  for (let depth = 0; depth < 32; depth++) {
    if (isMap(node)) {
      const pair = node.items.find((p) => holds(p.key) || holds(p.value));
      if (!pair || !isScalar(pair.key)) break;
      path.push(String(pair.key.value));
      if (holds(pair.key)) break;
      node = pair.value;
    } else if (isSeq(node)) {
      const index = node.items.findIndex((item) => holds(item) || (isPair(item) && (holds(item.key) || holds(item.value))));
      if (index < 0) break;
      path.push(index);
      node = node.items[index];
    } else {
      break;
    }
  }
  return path;
}

function locateError(doc: Document, lineCounter: LineCounter, e: PendingError): ConfigError {
  const offset = e.offset ?? offsetOfPath(doc, e.path, e.atKey === true);
  const path = formatPath(e.path);
  if (offset === undefined) return { path, line: 1, column: 1, message: e.message };
  const pos = lineCounter.linePos(offset);
  return { path, line: pos.line, column: pos.col, message: e.message };
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

// ---------------------------------------------------------------------------------------
// Schema issues
// ---------------------------------------------------------------------------------------

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
const genericMessage: z.core.$ZodErrorMap = (issue) => {
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

function zodIssuesToPending(issues: readonly z.core.$ZodIssue[]): PendingError[] {
  const out: PendingError[] = [];
  for (const issue of issues) {
    const path = issue.path.map((s) => (typeof s === 'number' ? s : String(s)));
    if (issue.code === 'unrecognized_keys') {
      const allowed = allowedKeysAt(path);
      for (const key of issue.keys) {
        out.push({ path: [...path, key], atKey: true, message: unknownKeyMessage(key, allowed) });
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

function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  const close = (key.length > 64 ? [] : allowed)
    .map((k) => ({ k, d: editDistance(key.toLowerCase(), k.toLowerCase()) }))
    .filter(({ k, d }) => d <= Math.max(1, Math.floor(k.length / 3)))
    .sort((a, b) => a.d - b.d);
  if (close.length > 0) return `unknown key ${show(key)} (did you mean "${close[0].k}"?)`;
  return allowed.length > 0 ? `unknown key ${show(key)}; allowed here: ${allowed.join(', ')}` : `unknown key ${show(key)}`;
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

// ---------------------------------------------------------------------------------------
// Cross-field checks (on the raw document, so they run even when the schema failed)
// ---------------------------------------------------------------------------------------

type Loose = Record<string, unknown>;
const isRecord = (value: unknown): value is Loose => typeof value === 'object' && value !== null && !Array.isArray(value);
const asArray = (value: unknown): readonly unknown[] => (Array.isArray(value) ? value : []);
const asString = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** Two binds conflict on the same port when the hosts are equal or one is a wildcard covering the other. */
function addressesConflict(a: HostPort, b: HostPort): boolean {
  if (a.port === 0 || b.port === 0 || a.port !== b.port) return false;
  if (a.host === b.host) return true;
  const covers = (wild: string, other: string): boolean =>
    wild === '::' || (wild === '0.0.0.0' && !other.includes(':'));
  return covers(a.host, b.host) || covers(b.host, a.host);
}

function crossCheck(root: unknown, lineOf: (path: PathSegments) => number | undefined): PendingError[] {
  const errors: PendingError[] = [];
  if (!isRecord(root)) return errors;
  const where = (path: PathSegments): string => {
    const line = lineOf(path);
    return line === undefined ? formatPath(path) : `${formatPath(path)} (line ${line})`;
  };

  /** Flags every repeat of a name within `items`, pointing at the repeat. */
  const checkUnique = (items: readonly unknown[], basePath: PathSegments, what: string): void => {
    const first = new Map<string, number>();
    items.forEach((item, i) => {
      const n = isRecord(item) ? asString(item.name) : undefined;
      if (n === undefined) return;
      const earlier = first.get(n);
      if (earlier === undefined) first.set(n, i);
      else errors.push({ path: [...basePath, i, 'name'], message: `duplicate ${what} name ${show(n)}: already used by ${where([...basePath, earlier])}` });
    });
  };

  const clusters = asArray(root.clusters);
  checkUnique(clusters, ['clusters'], 'cluster');
  const clusterNames = clusters.flatMap((c) => (isRecord(c) && typeof c.name === 'string' ? [c.name] : []));

  clusters.forEach((cluster, ci) => {
    if (!isRecord(cluster)) return;
    const seen = new Map<string, number>();
    asArray(cluster.endpoints).forEach((endpoint, ei) => {
      const url = isRecord(endpoint) ? asString(endpoint.url) : undefined;
      const parsed = url === undefined ? undefined : parseEndpointUrl(url);
      if (parsed === undefined || typeof parsed === 'string') return;
      const earlier = seen.get(parsed.origin);
      if (earlier === undefined) seen.set(parsed.origin, ei);
      else {
        errors.push({
          path: ['clusters', ci, 'endpoints', ei, 'url'],
          message: `duplicate endpoint ${parsed.origin}: already listed as ${where(['clusters', ci, 'endpoints', earlier])}`,
        });
      }
    });
  });

  const listeners = asArray(root.listeners);
  checkUnique(listeners, ['listeners'], 'listener');
  const binds: { readonly path: PathSegments; readonly address: HostPort }[] = [];
  listeners.forEach((listener, li) => {
    if (!isRecord(listener)) return;
    const text = asString(listener.address);
    const address = text === undefined ? undefined : parseAddress(text);
    if (address !== undefined && typeof address !== 'string') {
      const path: PathSegments = ['listeners', li, 'address'];
      const clash = binds.find((b) => addressesConflict(b.address, address));
      if (clash) errors.push({ path, message: `address ${text} conflicts with ${where(clash.path)}` });
      binds.push({ path, address });
    }
    const routes = asArray(listener.routes);
    checkUnique(routes, ['listeners', li, 'routes'], 'route');
    routes.forEach((route, ri) => {
      if (!isRecord(route) || typeof route.cluster !== 'string') return;
      const target = route.cluster;
      if (clusterNames.includes(target)) return;
      const defined = clusterNames.length === 0 ? 'no clusters are defined' : `defined clusters: ${clusterNames.join(', ')}`;
      errors.push({ path: ['listeners', li, 'routes', ri, 'cluster'], message: `unknown cluster ${show(target)}; ${defined}` });
    });
  });

  const adminText = isRecord(root.admin) ? asString(root.admin.address) : undefined;
  const admin = parseAddress(adminText ?? D.DEFAULT_ADMIN_ADDRESS);
  if (typeof admin !== 'string') {
    const clash = binds.find((b) => addressesConflict(b.address, admin));
    if (clash) {
      const path: PathSegments = adminText === undefined ? clash.path : ['admin', 'address'];
      const message =
        adminText === undefined
          ? `conflicts with the admin API's default address ${D.DEFAULT_ADMIN_ADDRESS}; set admin.address to another port`
          : `admin address ${adminText} conflicts with ${where(clash.path)}`;
      errors.push({ path, message });
    }
    // Off loopback, anyone who reaches the port could read the config and topology.
    const token = isRecord(root.admin) ? root.admin.token : undefined;
    if (adminText !== undefined && !isLoopbackHost(admin.host) && token === undefined) {
      errors.push({
        path: ['admin', 'address'],
        message: `admin address ${adminText} is not a loopback address: set admin.token (then every admin endpoint but /live and /ready requires "Authorization: Bearer <token>")`,
      });
    }
  }
  return errors;
}

// ---------------------------------------------------------------------------------------
// Compilation (input already validated: the helpers below only fail on a broken invariant)
// ---------------------------------------------------------------------------------------

function durationMs(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = parseDurationMs(text);
  if (value === undefined) throw new Error(`unvalidated duration ${show(text)}`);
  return value;
}

function sizeBytes(value: string | number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const bytes = parseSizeBytes(value);
  if (bytes === undefined) throw new Error(`unvalidated size ${show(value)}`);
  return bytes;
}

function hostPort(text: string): HostPort {
  const parsed = parseAddress(text);
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

function cidrBlock(text: string): CidrBlock {
  const parsed = parseCidr(text);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.block;
}

function compile(doc: ConfigDocument, source: string, hash: string): SidecarConfig {
  const baseDir = source === EMBEDDED_SOURCE ? process.cwd() : nodePath.dirname(source);
  const resolvePath = (p: string): string => nodePath.resolve(baseDir, p);

  const adminAddress = hostPort(doc.admin?.address ?? D.DEFAULT_ADMIN_ADDRESS);
  const admin: AdminConfig = { host: adminAddress.host, port: adminAddress.port, token: doc.admin?.token };

  const clusters = new Map<string, ClusterConfig>();
  for (const c of doc.clusters ?? []) clusters.set(c.name, compileCluster(c));

  const t = doc.tracing;
  const tracing: TracingConfig = {
    serviceName: t?.serviceName ?? D.DEFAULT_TRACING_SERVICE_NAME,
    exporter: t === undefined ? D.DEFAULT_TRACING_EXPORTER_WITHOUT_SECTION : (t.exporter ?? D.DEFAULT_TRACING_EXPORTER),
    endpoint: t?.endpoint,
    sampleRatio: t?.sampleRatio ?? D.DEFAULT_TRACING_SAMPLE_RATIO,
    propagators: [...new Set(t?.propagators ?? D.DEFAULT_TRACING_PROPAGATORS)],
    responseHeader: t?.responseHeader ?? D.DEFAULT_TRACING_RESPONSE_HEADER,
  };

  const logPath = doc.accessLog?.path ?? D.DEFAULT_ACCESS_LOG_PATH;
  const workers = doc.workers ?? D.DEFAULT_WORKERS;

  return {
    source,
    sha256: hash,
    loadedAt: new Date(),
    admin,
    listeners: doc.listeners.map((l) => compileListener(l, resolvePath)),
    clusters,
    tracing,
    accessLog: {
      path: ['stdout', 'stderr', 'off'].includes(logPath) ? logPath : resolvePath(logPath),
      query: doc.accessLog?.query ?? D.DEFAULT_ACCESS_LOG_QUERY,
    },
    drain: {
      delayMs: durationMs(doc.drain?.delay, D.DEFAULT_DRAIN_DELAY_MS),
      timeoutMs: durationMs(doc.drain?.timeout, D.DEFAULT_DRAIN_TIMEOUT_MS),
    },
    workers: workers === 'auto' ? availableParallelism() : workers,
    document: redactSecrets(doc),
  };
}

/** /config shows the document; the admin token must not travel with it. */
function redactSecrets(doc: ConfigDocument): ConfigDocument {
  if (doc.admin?.token === undefined) return doc;
  return { ...doc, admin: { ...doc.admin, token: '<redacted>' } };
}

function compileListener(l: ListenerDocument, resolvePath: (p: string) => string): ListenerConfig {
  const address = hostPort(l.address);
  const maxConnections = l.maxConnections ?? D.DEFAULT_LISTENER_MAX_CONNECTIONS;
  const caseInsensitive = l.pathMatching?.caseInsensitive ?? D.DEFAULT_PATH_MATCHING_CASE_INSENSITIVE;
  return {
    name: l.name,
    host: address.host,
    port: address.port,
    trustedProxies: (l.trustedProxies ?? D.DEFAULT_TRUSTED_PROXIES).map(cidrBlock),
    tls:
      l.tls === undefined
        ? undefined
        : {
            certPath: resolvePath(l.tls.cert),
            keyPath: resolvePath(l.tls.key),
            clientCaPath: l.tls.clientCa === undefined ? undefined : resolvePath(l.tls.clientCa),
            sni: (l.tls.sni ?? []).map((s) => ({
              serverNames: s.serverNames.map((n) => n.toLowerCase()),
              certPath: resolvePath(s.cert),
              keyPath: resolvePath(s.key),
            })),
          },
    routes: l.routes.map((r) => compileRoute(r, caseInsensitive)),
    maxHeaderBytes: sizeBytes(l.maxHeaderBytes, D.DEFAULT_LISTENER_MAX_HEADER_BYTES),
    headersTimeoutMs: durationMs(l.headersTimeout, D.DEFAULT_LISTENER_HEADERS_TIMEOUT_MS),
    requestTimeoutMs: durationMs(l.requestTimeout, D.DEFAULT_LISTENER_REQUEST_TIMEOUT_MS),
    keepAliveTimeoutMs: durationMs(l.keepAliveTimeout, D.DEFAULT_LISTENER_KEEP_ALIVE_TIMEOUT_MS),
    maxConnections,
    maxConnectionsPerPeer: l.maxConnectionsPerPeer ?? D.defaultMaxConnectionsPerPeer(maxConnections),
    maxHeaderCount: l.maxHeaderCount ?? D.DEFAULT_LISTENER_MAX_HEADER_COUNT,
    headersWithUnderscores: l.headersWithUnderscores ?? D.DEFAULT_LISTENER_HEADERS_WITH_UNDERSCORES,
    pathMatching: {
      caseInsensitive,
      rejectPathParameters: l.pathMatching?.rejectPathParameters ?? D.DEFAULT_PATH_MATCHING_REJECT_PATH_PARAMETERS,
    },
  };
}

/** `caseInsensitive`: the listener's pathMatching; paths and prefixes are kept lower-case, regexes compile case-insensitive. */
function compileMatch(m: RouteDocument['match'], caseInsensitive: boolean): RouteMatch {
  const base = {
    methods: m.methods === undefined ? undefined : new Set(m.methods.map((x) => x.toUpperCase())),
    headers: Object.entries(m.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v] as const),
    host: m.host?.toLowerCase(),
    caseInsensitive,
  };
  const fold = (text: string): string => (caseInsensitive ? text.toLowerCase() : text);
  if (m.regex !== undefined) return { kind: 'regex', value: m.regex, regex: compileRouteRegex(m.regex, caseInsensitive), ...base };
  if (m.prefix !== undefined) return { kind: 'prefix', value: fold(m.prefix), regex: undefined, ...base };
  if (m.path !== undefined) return { kind: 'path', value: fold(m.path), regex: undefined, ...base };
  throw new Error('route match without path, prefix or regex');
}

function compileHeaders(h: { add?: Record<string, string>; remove?: string[] } | undefined): HeaderMutation {
  return {
    add: Object.entries(h?.add ?? {}).map(([k, v]) => [k.toLowerCase(), v] as const),
    remove: (h?.remove ?? []).map((k) => k.toLowerCase()),
  };
}

function compileRetry(r: RouteDocument['retry']): RetryPolicy {
  return {
    attempts: r === undefined ? D.DEFAULT_RETRY_ATTEMPTS_WITHOUT_POLICY : (r.attempts ?? D.DEFAULT_RETRY_ATTEMPTS),
    on: new Set<RetryOn>(r?.on ?? D.DEFAULT_RETRY_ON),
    statusCodes: new Set(r?.statusCodes ?? D.DEFAULT_RETRY_STATUS_CODES),
    perTryTimeoutMs: r?.perTryTimeout === undefined ? D.DEFAULT_PER_TRY_TIMEOUT_MS : durationMs(r.perTryTimeout, 0),
    backoff: {
      baseMs: durationMs(r?.backoff?.base, D.DEFAULT_BACKOFF_BASE_MS),
      maxMs: durationMs(r?.backoff?.max, D.DEFAULT_BACKOFF_MAX_MS),
    },
    methods: new Set((r?.methods ?? D.DEFAULT_RETRY_METHODS).map((x) => x.toUpperCase())),
    idempotencyKey: r?.idempotencyKey ?? D.DEFAULT_RETRY_IDEMPOTENCY_KEY,
    maxBodyBytes: sizeBytes(r?.maxBodyBytes, D.DEFAULT_RETRY_MAX_BODY_BYTES),
  };
}

function compileRoute(r: RouteDocument, caseInsensitive: boolean): RouteConfig {
  const base = {
    name: r.name,
    match: compileMatch(r.match, caseInsensitive),
    requestHeaders: compileHeaders(r.requestHeaders),
    responseHeaders: compileHeaders(r.responseHeaders),
    maxRequestBodyBytes: sizeBytes(r.maxRequestBodyBytes, D.DEFAULT_MAX_REQUEST_BODY_BYTES),
  };
  if (r.directResponse !== undefined) {
    return {
      ...base,
      action: 'directResponse',
      directResponse: {
        status: r.directResponse.status,
        body: r.directResponse.body ?? D.DEFAULT_DIRECT_RESPONSE_BODY,
        contentType: r.directResponse.contentType ?? D.DEFAULT_DIRECT_RESPONSE_CONTENT_TYPE,
      },
    };
  }
  if (r.cluster === undefined) throw new Error('route without cluster or directResponse');
  return {
    ...base,
    action: 'cluster',
    cluster: r.cluster,
    rewritePrefix: r.rewritePrefix,
    timeoutMs: durationMs(r.timeout, D.DEFAULT_ROUTE_TIMEOUT_MS),
    retry: compileRetry(r.retry),
    websocket: { idleTimeoutMs: durationMs(r.websocket?.idleTimeout, D.DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS) },
  };
}

function compileCluster(c: ClusterDocument): ClusterConfig {
  const cb = c.circuitBreaker;
  const hc = c.healthCheck;
  const od = c.outlierDetection;
  const settings: Omit<ClusterConfig, 'fingerprint'> = {
    name: c.name,
    endpoints: c.endpoints.map((e) => {
      const parsed = parseEndpointUrl(e.url);
      if (typeof parsed === 'string') throw new Error(parsed);
      return { url: parsed.origin, priority: e.priority ?? D.DEFAULT_ENDPOINT_PRIORITY };
    }),
    connectTimeoutMs: durationMs(c.connectTimeout, D.DEFAULT_CONNECT_TIMEOUT_MS),
    idleTimeoutMs: durationMs(c.idleTimeout, D.DEFAULT_IDLE_TIMEOUT_MS),
    maxConnections: c.maxConnections ?? D.DEFAULT_MAX_CONNECTIONS,
    maxResponseHeaderBytes: sizeBytes(c.maxResponseHeaderBytes, D.DEFAULT_MAX_RESPONSE_HEADER_BYTES),
    circuitBreaker: {
      errorThresholdPercentage: cb?.errorThresholdPercentage ?? D.DEFAULT_CB_ERROR_THRESHOLD_PERCENT,
      volumeThreshold: cb?.volumeThreshold ?? D.DEFAULT_CB_VOLUME_THRESHOLD_REQUESTS,
      windowMs: durationMs(cb?.window, D.DEFAULT_CB_WINDOW_MS),
      resetTimeoutMs: durationMs(cb?.resetTimeout, D.DEFAULT_CB_RESET_TIMEOUT_MS),
      maxConcurrentRequests: cb?.maxConcurrentRequests ?? D.DEFAULT_CB_MAX_CONCURRENT_REQUESTS,
      maxPendingRequests: cb?.maxPendingRequests ?? D.DEFAULT_CB_MAX_PENDING_REQUESTS,
    },
    healthCheck:
      hc === undefined
        ? undefined
        : {
            path: hc.path,
            intervalMs: durationMs(hc.interval, D.DEFAULT_HEALTH_CHECK_INTERVAL_MS),
            timeoutMs: durationMs(hc.timeout, D.DEFAULT_HEALTH_CHECK_TIMEOUT_MS),
            unhealthyThreshold: hc.unhealthyThreshold ?? D.DEFAULT_HEALTH_CHECK_UNHEALTHY_THRESHOLD_COUNT,
            healthyThreshold: hc.healthyThreshold ?? D.DEFAULT_HEALTH_CHECK_HEALTHY_THRESHOLD_COUNT,
          },
    outlierDetection:
      od === undefined
        ? undefined
        : {
            consecutive5xx: od.consecutive5xx ?? D.DEFAULT_OUTLIER_CONSECUTIVE_5XX_COUNT,
            baseEjectionTimeMs: durationMs(od.baseEjectionTime, D.DEFAULT_OUTLIER_BASE_EJECTION_TIME_MS),
          },
    retryBudget: {
      ratio: c.retryBudget?.ratio ?? D.DEFAULT_RETRY_BUDGET_RATIO,
      minPerSecond: c.retryBudget?.minPerSecond ?? D.DEFAULT_RETRY_BUDGET_MIN_PER_SECOND,
    },
  };
  return { ...settings, fingerprint: stableStringify(settings) };
}

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

/** JSON with sorted keys, so equal settings give equal text whatever the key order in the file. */
export function stableStringify(value: unknown): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  const record = value as Loose;
  const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableStringify(record[k])}`).join(',')}}`;
}

/**
 * Makes a snapshot that crossed a process boundary usable, then freezes it as the compiler
 * freezes the ones it builds (a structured clone is not frozen). The clone of a compiled route
 * regex keeps its fields but not its class, so each is compiled again from its source, which
 * the primary has already validated.
 */
export function freezeSnapshot(config: SidecarConfig): SidecarConfig {
  for (const listener of config.listeners) {
    for (const route of listener.routes) {
      if (route.match.kind === 'regex') (route.match as { regex: RouteMatch['regex'] }).regex = compileRouteRegex(route.match.value, route.match.caseInsensitive);
    }
  }
  return deepFreeze(config);
}

/**
 * Freezes plain objects and arrays recursively. Maps and Sets are frozen as objects (their
 * entries stay mutable through set/add; the types expose them read-only). RegExps and route
 * regexes are left alone: a frozen RegExp cannot have its lastIndex written, and a route
 * regex writes its state cache as it matches.
 */
function deepFreeze<T>(value: T, seen = new WeakSet<object>()): T {
  if (typeof value !== 'object' || value === null || seen.has(value) || value instanceof RegExp || isRouteRegex(value)) return value;
  seen.add(value);
  if (value instanceof Map) {
    for (const v of value.values()) deepFreeze(v, seen);
  } else if (value instanceof Set) {
    for (const v of value.values()) deepFreeze(v, seen);
  } else if (!ArrayBuffer.isView(value)) {
    for (const v of Object.values(value)) deepFreeze(v, seen);
  }
  if (!ArrayBuffer.isView(value)) Object.freeze(value);
  return value;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function describeReadError(file: string, err: unknown): string {
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
