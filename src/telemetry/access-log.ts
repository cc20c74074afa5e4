import pino from 'pino';
import type { AccessLogConfig } from '../config/types';

/** One JSON line per request, written off the request path by pino's asynchronous destination. */
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
}

export interface AccessLog {
  write(entry: AccessLogEntry): void;
  flush(): Promise<void>;
}

const DISABLED: AccessLog = { write: () => {}, flush: async () => {} };

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
}

export function createAccessLog(config: AccessLogConfig, options: AccessLogOptions = {}): AccessLog {
  if (config.path === 'off') return DISABLED;
  const dest =
    config.path === 'stdout' ? 1
    : config.path === 'stderr' ? 2
    : config.path;
  // Asynchronous: lines written while a write is in flight are coalesced into the next one,
  // so a busy sidecar does not pay a syscall per request and a quiet one shows lines at once.
  // The entry is a flat record of strings and numbers, so one JSON.stringify per line is all
  // the formatting it needs; pino's destination (sonic-boom) does the buffered writing.
  // sonic-boom gathers writes into chunks of at most maxWrite bytes and never splits a write
  // across chunks: with maxWrite at PIPE_BUF and no line above it, each chunk is whole lines.
  const shared = options.shared === true;
  const destination = pino.destination({ dest, sync: false, mkdir: typeof dest === 'string', ...(shared ? { maxWrite: PIPE_BUF_BYTES } : {}) });
  let opened = typeof dest === 'number';
  destination.once('ready', () => (opened = true));
  return {
    write: shared
      ? (entry) => destination.write(lineWithin(entry, PIPE_BUF_BYTES))
      : (entry) => {
          destination.write(`{"time":"${new Date().toISOString()}",${JSON.stringify(entry).slice(1)}\n`);
        },
    flush: () =>
      new Promise<void>((resolve) => {
        const flushNow = (): void => {
          try {
            destination.flushSync();
          } catch {
            // Nothing buffered, or the destination is already closed.
          }
          resolve();
        };
        // A file destination opens asynchronously; lines written before then are buffered.
        if (opened) flushNow();
        else destination.once('ready', flushNow);
      }),
  };
}

/** The entry's line; when it is longer than `maxBytes`, its path is cut until it fits. */
export function lineWithin(entry: AccessLogEntry, maxBytes: number): string {
  const time = new Date().toISOString();
  let line = `{"time":"${time}",${JSON.stringify(entry).slice(1)}\n`;
  let path = entry.path;
  // Each pass removes at least the excess in characters (a character is at least one byte),
  // so one pass is enough unless another field is long too; the bound keeps it cheap.
  for (let pass = 0; pass < 3 && Buffer.byteLength(line) > maxBytes && path.length > 0; pass++) {
    const excess = Buffer.byteLength(line) - maxBytes;
    path = path.slice(0, Math.max(0, path.length - excess - 32));
    line = `{"time":"${time}",${JSON.stringify({ ...entry, path, path_truncated: true }).slice(1)}\n`;
  }
  return line;
}
