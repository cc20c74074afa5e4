import type { AccessLog } from './access-log';

/** One error the sidecar met: a response it answered itself, a rejected reload, a failed span export. */
export interface RecentError {
  /** ISO 8601. */
  readonly time: string;
  /** An error code from the catalogue (UPSTREAM_TIMEOUT...), or CONFIG_REJECTED, SPAN_EXPORT_FAILED. */
  readonly code: string;
  readonly message?: string;
  readonly status?: number;
  readonly method?: string;
  readonly path?: string;
  readonly listener?: string;
  readonly route?: string;
  readonly cluster?: string;
  readonly upstream?: string;
  readonly requestId?: string;
  readonly traceId?: string;
  /** In a worker group (`workers` >= 2): the worker slot that met it. */
  readonly worker?: number;
}

export const DEFAULT_RECENT_ERRORS_KEPT = 20;
/** Paths are cut to this length: the buffer must stay small whatever clients send. */
const MAX_PATH_CHARS = 200;

/**
 * The path cut to MAX_PATH_CHARS. Its query string is already gone unless `accessLog.query`
 * is keep: entries come from the access log's lines (see withQueryPolicy).
 */
function shortPath(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  return path.length > MAX_PATH_CHARS ? `${path.slice(0, MAX_PATH_CHARS)}…` : path;
}

/** The last few errors, newest last; a fixed-size ring, so recording costs no allocation beyond the entry. */
export class RecentErrors {
  private readonly entries: (RecentError | undefined)[];
  private next = 0;
  private total = 0;

  constructor(private readonly capacity: number = DEFAULT_RECENT_ERRORS_KEPT) {
    this.entries = new Array<RecentError | undefined>(capacity);
  }

  record(entry: Omit<RecentError, 'time'> & { time?: string }): void {
    this.entries[this.next] = { ...entry, path: shortPath(entry.path), time: entry.time ?? new Date().toISOString() };
    this.next = (this.next + 1) % this.capacity;
    this.total++;
  }

  /** Oldest first. */
  list(): RecentError[] {
    const out: RecentError[] = [];
    for (let i = 0; i < this.capacity; i++) {
      const entry = this.entries[(this.next + i) % this.capacity];
      if (entry !== undefined) out.push(entry);
    }
    return out;
  }

  /** Errors recorded since start, including those the ring has forgotten. */
  get count(): number {
    return this.total;
  }
}

/** An access log that also keeps every line with a sidecar error code in `errors`. */
export function recordingErrors(log: AccessLog, errors: RecentErrors): AccessLog {
  return {
    enabled: log.enabled,
    write: (entry) => {
      if (entry.error !== undefined) {
        errors.record({
          code: entry.error,
          status: entry.status,
          method: entry.method,
          path: entry.path,
          listener: entry.listener,
          route: entry.route,
          cluster: entry.cluster,
          upstream: entry.upstream,
          requestId: entry.request_id,
          traceId: entry.trace_id,
        });
      }
      log.write(entry);
    },
    flush: () => log.flush(),
  };
}
