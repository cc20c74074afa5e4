import { settlesWithin } from '../core/async';
import { LineWriter } from './line-writer';
import type { AccessLogConfig } from '../config/types';

/** One JSON line per request, written off the request path (see LineWriter). */
export interface AccessLogEntry {
  method: string;
  path: string;
  listener: string;
  route: string | undefined;
  cluster: string | undefined;
  status: number;
  duration_ms: number;
  upstream_ms: number | undefined;
  bytes_in: number;
  bytes_out: number;
  request_id: string;
  attempts: number;
  error: string | undefined;
  /** Envoy-style response flags (see README and response-flags.ts): UF, UO, UT, NR, DC, ... */
  flags: string | undefined;
  upstream: string | undefined;
  /** `websocket` on the line of a tunnel (written when it closes; bytes are the tunnel's). */
  upgrade?: string;
  /** The request's trace id (also when the trace is not sampled: the app saw the same one). */
  trace_id?: string;
  /** The id of the sidecar's SERVER span of the request. */
  span_id?: string;
  /** The gRPC status the client got (gRPC calls only). */
  grpc_status?: number;
  /** Set when `path` was cut to keep the line within one atomic write (a shared access log). */
  path_truncated?: boolean;
}

/**
 * What the access log says of one request, as the code that served it holds it: a proxied
 * exchange's context, a tunnel, or a request the sidecar answered itself.
 */
export interface LoggedRequest {
  readonly method: string | undefined;
  /** The client's request target (before any rewrite). */
  readonly path: string | undefined;
  readonly listenerName: string;
  readonly routeName: string | undefined;
  readonly clusterName: string | undefined;
  readonly requestId: string;
  readonly status: number;
  readonly upstreamMs: number | undefined;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly attempts: number;
  readonly errorCode: string | undefined;
  readonly upstreamUrl: string | undefined;
  /** gRPC calls: the status the client got. */
  readonly grpcStatus?: number | undefined;
}

/**
 * The one builder of an access log entry (the exchange, the tunnel and local answers all use
 * it, so that the lines agree field by field). `status` overrides the request's own (a client
 * that left before any response is logged 499).
 */
export function accessLogEntry(
  r: LoggedRequest,
  durationMs: number,
  flags: string | undefined,
  trace: { readonly traceId?: string; readonly spanId?: string } | undefined,
  status = r.status,
): AccessLogEntry {
  const entry: AccessLogEntry = {
    method: r.method ?? '',
    path: r.path ?? '',
    listener: r.listenerName,
    route: r.routeName,
    cluster: r.clusterName,
    status,
    duration_ms: roundMs(durationMs),
    upstream_ms: r.upstreamMs === undefined ? undefined : roundMs(r.upstreamMs),
    bytes_in: r.bytesIn,
    bytes_out: r.bytesOut,
    request_id: r.requestId,
    attempts: r.attempts,
    error: r.errorCode,
    flags,
    upstream: r.upstreamUrl,
    trace_id: trace?.traceId,
    span_id: trace?.spanId,
  };
  if (r.grpcStatus !== undefined) entry.grpc_status = r.grpcStatus;
  return entry;
}

/** Milliseconds to the microsecond, as the log writes them. */
function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

export interface AccessLog {
  /** false: write() keeps nothing (`path: off`), so callers may skip building entries. */
  readonly enabled?: boolean;
  write(entry: AccessLogEntry): void;
  flush(): Promise<void>;
}

/** How long a flush at shutdown waits for a destination that stopped reading (a stuck pipe). */
const ACCESS_LOG_FLUSH_TIMEOUT_MS = 2_000;

const DISABLED: AccessLog = { enabled: false, write: () => {}, flush: async () => {} };

/**
 * POSIX: a write of at most PIPE_BUF bytes to a pipe is never interleaved with the writes of
 * other processes (PIPE_BUF is 4096 on Linux, at least 512 anywhere). On a regular file
 * opened for appending, each write lands whole at the end of the file.
 */
export const PIPE_BUF_BYTES = 4096;

export interface AccessLogOptions {
  /**
   * Other processes (the sibling workers) write to the same destination. Every write() then
   * holds whole lines and at most PIPE_BUF_BYTES, so that lines never interleave; a line that
   * would be longer has its `path` cut (and `path_truncated: true`) until it fits.
   */
  readonly shared?: boolean;
  /** Told of each line the destination could not take in time (see LineWriter). */
  readonly onDropped?: () => void;
}

export function createAccessLog(config: Pick<AccessLogConfig, 'path'>, options: AccessLogOptions = {}): AccessLog {
  if (config.path === 'off') return DISABLED;
  const shared = options.shared === true;
  const writer = LineWriter.open(config.path, { maxWriteBytes: shared ? PIPE_BUF_BYTES : undefined, onDropped: options.onDropped });
  return {
    enabled: true,
    write: (entry) => writer.write(shared ? lineWithin(entry, PIPE_BUF_BYTES) : formatAccessLine(entry)),
    flush: async () => {
      await settlesWithin(writer.flush(), ACCESS_LOG_FLUSH_TIMEOUT_MS);
    },
  };
}

/**
 * `accessLog.query: drop`: every entry written through the returned log has the query string
 * cut from its `path` (the entry is changed in place: an entry is built for one write).
 * `keep` returns `log` itself, so keeping costs nothing.
 */
export function withQueryPolicy(log: AccessLog, query: AccessLogConfig['query']): AccessLog {
  if (query === 'keep') return log;
  return {
    enabled: log.enabled,
    write: (entry) => {
      entry.path = pathWithoutQuery(entry.path);
      log.write(entry);
    },
    flush: () => log.flush(),
  };
}

/** The path up to its `?`, if any. */
export function pathWithoutQuery(path: string): string {
  const queryAt = path.indexOf('?');
  return queryAt === -1 ? path : path.slice(0, queryAt);
}

let isoSecond = Number.NaN;
/** `2026-12-03T12:22:55.` of the second last formatted. */
let isoSecondPrefix = '';

/**
 * `Date#toISOString` of `ms` (a time from 1970 to 9999), with the part up to the second
 * formatted once per second: toISOString takes ~0.8 µs, and at a modest rate every line
 * falls in a millisecond of its own.
 */
export function isoTimestamp(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond) {
    isoSecond = second;
    isoSecondPrefix = new Date(second * 1000).toISOString().slice(0, 20);
  }
  const millis = ms - second * 1000;
  return `${isoSecondPrefix}${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
}

/**
 * Quoted forms of the strings that recur from line to line (methods, the config's listener,
 * route, cluster and endpoint names, error codes, flags): a map lookup is about a tenth of a
 * JSON.stringify, which was most of a line's formatting. Bounded, though the values are few.
 */
const recurringQuoted = new Map<string, string>();
const MAX_RECURRING_QUOTED = 1_024;

function quoteRecurring(value: string): string {
  let quoted = recurringQuoted.get(value);
  if (quoted === undefined) {
    quoted = JSON.stringify(value);
    if (recurringQuoted.size >= MAX_RECURRING_QUOTED) recurringQuoted.clear();
    recurringQuoted.set(value, quoted);
  }
  return quoted;
}

/** Characters JSON.stringify writes as they are: printable ASCII but `"` and `\`. */
const VERBATIM_IN_JSON = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** A string that differs per request (paths and request ids come from clients). */
function quoteText(value: string): string {
  return VERBATIM_IN_JSON.test(value) ? `"${value}"` : JSON.stringify(value);
}

/**
 * One JSON line: the same keys, order and values as JSON.stringify of the entry after a
 * `time` key (undefined fields left out), written field by field because this runs for every
 * request. A test holds it to JSON.stringify for arbitrary strings in every field.
 */
export function formatAccessLine(e: AccessLogEntry): string {
  let line =
    `{"time":"${isoTimestamp(Date.now())}","method":${quoteRecurring(e.method)},"path":${quoteText(e.path)},"listener":${quoteRecurring(e.listener)}` +
    (e.route === undefined ? '' : `,"route":${quoteRecurring(e.route)}`) +
    (e.cluster === undefined ? '' : `,"cluster":${quoteRecurring(e.cluster)}`) +
    `,"status":${e.status},"duration_ms":${e.duration_ms}` +
    (e.upstream_ms === undefined ? '' : `,"upstream_ms":${e.upstream_ms}`) +
    `,"bytes_in":${e.bytes_in},"bytes_out":${e.bytes_out},"request_id":${quoteText(e.request_id)},"attempts":${e.attempts}` +
    (e.error === undefined ? '' : `,"error":${quoteRecurring(e.error)}`) +
    (e.flags === undefined ? '' : `,"flags":${quoteRecurring(e.flags)}`) +
    (e.upstream === undefined ? '' : `,"upstream":${quoteRecurring(e.upstream)}`);
  if (e.upgrade !== undefined) line += `,"upgrade":${quoteRecurring(e.upgrade)}`;
  if (e.trace_id !== undefined) line += `,"trace_id":${quoteText(e.trace_id)}`;
  if (e.span_id !== undefined) line += `,"span_id":${quoteText(e.span_id)}`;
  if (e.path_truncated !== undefined) line += `,"path_truncated":${e.path_truncated}`;
  return line + '}\n';
}

/** The entry's line; when it is longer than `maxBytes`, its path is cut until it fits. */
export function lineWithin(entry: AccessLogEntry, maxBytes: number): string {
  let line = formatAccessLine(entry);
  // Most lines are far below the bound: their UTF-8 size cannot exceed 3 bytes a character.
  if (line.length * 3 <= maxBytes) return line;
  let path = entry.path;
  // Each pass removes at least the excess in characters (a character is at least one byte),
  // so one pass is enough unless another field is long too; the bound keeps it cheap.
  for (let pass = 0; pass < 3 && Buffer.byteLength(line) > maxBytes && path.length > 0; pass++) {
    const excess = Buffer.byteLength(line) - maxBytes;
    path = path.slice(0, Math.max(0, path.length - excess - 32));
    line = formatAccessLine({ ...entry, path, path_truncated: true });
  }
  return line;
}
