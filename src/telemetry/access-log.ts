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

export function createAccessLog(config: AccessLogConfig): AccessLog {
  if (config.path === 'off') return DISABLED;
  const dest =
    config.path === 'stdout' ? 1
    : config.path === 'stderr' ? 2
    : config.path;
  // Asynchronous: lines written while a write is in flight are coalesced into the next one,
  // so a busy sidecar does not pay a syscall per request and a quiet one shows lines at once.
  // The entry is a flat record of strings and numbers, so one JSON.stringify per line is all
  // the formatting it needs; pino's destination (sonic-boom) does the buffered writing.
  const destination = pino.destination({ dest, sync: false, mkdir: typeof dest === 'string' });
  let opened = typeof dest === 'number';
  destination.once('ready', () => (opened = true));
  return {
    write: (entry) => {
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
