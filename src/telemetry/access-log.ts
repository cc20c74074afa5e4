import pino, { type Logger } from 'pino';
import type { AccessLogConfig } from '../config/types';

/** One line per request, written off the request path by pino's asynchronous destination. */
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
  const destination = pino.destination({ dest, sync: false, mkdir: typeof dest === 'string' });
  const logger: Logger = pino(
    { base: null, timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'msg', formatters: { level: () => ({}) } },
    destination,
  );
  return {
    write: (entry) => logger.info(entry),
    flush: () =>
      new Promise<void>((resolve) => {
        try {
          destination.flushSync();
        } catch {
          // Not yet open (nothing written): nothing to flush.
        }
        resolve();
      }),
  };
}
