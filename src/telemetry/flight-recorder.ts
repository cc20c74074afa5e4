import type { RecorderConfig } from '../config/types';

/**
 * The flight recorder: the timeline of recent requests (route, each attempt, the policies'
 * decisions, flags, sizes, headers with secrets redacted; never bodies), for
 * `GET /requests` and `GET /requests/{x-request-id}`.
 *
 * Two bounded lists: the last `requests` requests of any outcome, and the last `failures`
 * failures besides, so a failure stays findable however many successes follow it. Both are
 * Maps in insertion order (oldest first), keyed by request id: a client-chosen id seen again
 * replaces the older entry. The estimated size of all entries is bounded by `maxBytes`; past
 * it the oldest entries go first, from both lists.
 */

export interface AttemptRecord {
  readonly attempt: number;
  readonly endpoint: string;
  /** ms after the request arrived. */
  readonly startMs: number;
  durationMs: number | null;
  /** The status code, or the failure (`connect-failure`, `timeout`, ...); null while unanswered. */
  outcome: string | null;
  /** Why this attempt is a retry; null for the first try. */
  readonly retryReason: string | null;
  /** The backoff waited before this attempt, ms. */
  readonly backoffMs: number;
}

export interface RequestRecord {
  readonly requestId: string;
  /** ISO time the request arrived. */
  readonly at: string;
  readonly method: string;
  /** As received: path and query. */
  readonly path: string;
  /** Lower-case host without port, '' when none. */
  readonly host: string;
  readonly listener: string;
  readonly route: string | null;
  readonly cluster: string | null;
  readonly status: number;
  readonly error: string | null;
  readonly flags: string | null;
  readonly durationMs: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly attempts: readonly AttemptRecord[];
  /** What the policies decided, in order, e.g. `retry: no (budget)`, `breaker: open, refused`. */
  readonly decisions: readonly string[];
  readonly requestHeaders: Readonly<Record<string, string | readonly string[]>>;
  /** The response's headers as relayed to the client; empty when the sidecar answered. */
  readonly responseHeaders: Readonly<Record<string, string | readonly string[]>>;
}

/**
 * What the chain hands to the recorder: the record with its time as a number and its headers
 * as the flat `[name, value, ...]` lists the exchange already holds (the client's raw request
 * headers, the response headers as relayed), kept by reference: nothing is copied per request.
 * Names are lower-cased and values redacted when the JSON form (RequestRecord) is built, only
 * when someone reads it, with the redacted names in force when the exchange was recorded.
 */
export interface RecordedExchange extends Omit<RequestRecord, 'at' | 'requestHeaders' | 'responseHeaders'> {
  /** ms since the epoch when the request arrived. */
  readonly atMs: number;
  /** Not to be changed after recording (the recorder keeps the caller's list). */
  readonly requestHeaders: readonly string[];
  /** Not to be changed after recording (the recorder keeps the caller's list). */
  readonly responseHeaders: readonly string[];
}

export interface RecordFilter {
  /** `5xx`, `4xx`, or one status such as `503`. */
  readonly status?: string;
  readonly route?: string;
  /** Most recent first; at most this many. */
  readonly limit?: number;
}

export const REDACTED = '[redacted]';
/** What one record costs beyond its strings (object headers, numbers, Map entry). */
const RECORD_OVERHEAD_BYTES = 400;
const ATTEMPT_OVERHEAD_BYTES = 120;

export class FlightRecorder {
  private readonly recent = new Map<string, Sized>();
  private readonly failures = new Map<string, Sized>();
  private bytes = 0;
  /** Order of recording (times may tie within a millisecond). */
  private sequence = 0;

  constructor(private config: RecorderConfig) {}

  /** A reload changed `admin.recorder`: the new bounds apply now. */
  configure(config: RecorderConfig): void {
    this.config = config;
    this.trim();
  }

  /** Estimated bytes of what is kept now. */
  get sizeBytes(): number {
    return this.bytes;
  }

  get size(): { readonly requests: number; readonly failures: number } {
    return { requests: this.recent.size, failures: this.failures.size };
  }

  record(entry: RecordedExchange): void {
    const sized: Sized = { entry, bytes: estimateBytes(entry), sequence: this.sequence++, redacted: this.config.redactHeaders };
    this.put(this.recent, sized);
    if (isFailure(entry)) this.put(this.failures, sized);
    this.trim();
  }

  get(requestId: string): RequestRecord | undefined {
    const sized = this.recent.get(requestId) ?? this.failures.get(requestId);
    return sized === undefined ? undefined : viewOf(sized);
  }

  /** Both lists merged, most recent first, filtered. */
  list(filter: RecordFilter = {}): RequestRecord[] {
    const seen = new Set<Sized>();
    const all: Sized[] = [];
    for (const source of [this.recent, this.failures]) {
      for (const sized of source.values()) {
        if (seen.has(sized) || !matchesFilter(sized.entry, filter)) continue;
        seen.add(sized);
        all.push(sized);
      }
    }
    all.sort((a, b) => b.sequence - a.sequence);
    return (filter.limit === undefined ? all : all.slice(0, filter.limit)).map(viewOf);
  }

  private put(map: Map<string, Sized>, sized: Sized): void {
    const id = sized.entry.requestId;
    const old = map.get(id);
    if (old !== undefined) this.drop(map, id, old);
    map.set(id, sized);
    if (!this.isIn(sized, map)) this.bytes += sized.bytes;
  }

  /** Whether `sized` is already counted through the other list. */
  private isIn(sized: Sized, except: Map<string, Sized>): boolean {
    const other = except === this.recent ? this.failures : this.recent;
    return other.get(sized.entry.requestId) === sized;
  }

  private drop(map: Map<string, Sized>, id: string, sized: Sized): void {
    map.delete(id);
    if (!this.isIn(sized, map)) this.bytes -= sized.bytes;
  }

  private trim(): void {
    const { requests, failures, maxBytes } = this.config;
    while (this.recent.size > requests) this.dropOldest(this.recent);
    while (this.failures.size > failures) this.dropOldest(this.failures);
    // Past the byte cap the oldest entry goes from both lists, so that each step frees its bytes.
    while (this.bytes > maxBytes) {
      const oldest = olderOf(first(this.recent), first(this.failures));
      if (oldest === undefined) break;
      const id = oldest.entry.requestId;
      if (this.recent.get(id) === oldest) this.drop(this.recent, id, oldest);
      if (this.failures.get(id) === oldest) this.drop(this.failures, id, oldest);
    }
  }

  private dropOldest(map: Map<string, Sized>): void {
    const first = map.entries().next();
    if (first.done === true) return;
    const [id, sized] = first.value;
    this.drop(map, id, sized);
  }
}

function first(map: Map<string, Sized>): Sized | undefined {
  const next = map.values().next();
  return next.done === true ? undefined : next.value;
}

function olderOf(a: Sized | undefined, b: Sized | undefined): Sized | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a.sequence <= b.sequence ? a : b;
}

interface Sized {
  readonly entry: RecordedExchange;
  readonly bytes: number;
  readonly sequence: number;
  /** The names redacted when it was recorded: a reload that drops a name does not reveal earlier values. */
  readonly redacted: ReadonlySet<string>;
}

export function isFailure(entry: Pick<RequestRecord, 'status' | 'error'>): boolean {
  return entry.status >= 500 || entry.error !== null;
}

function viewOf(sized: Sized): RequestRecord {
  const { atMs, requestHeaders, responseHeaders, ...rest } = sized.entry;
  return {
    ...rest,
    at: new Date(atMs).toISOString(),
    requestHeaders: redactedHeaderMap(requestHeaders, sized.redacted),
    responseHeaders: redactedHeaderMap(responseHeaders, sized.redacted),
  };
}

/** A flat `[name, value, ...]` list as an object: names lower-case, repeated names as arrays, the values of `redacted` replaced. */
export function redactedHeaderMap(flat: readonly string[], redacted: ReadonlySet<string>): Record<string, string | readonly string[]> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = flat[i].toLowerCase();
    const value = redacted.has(name) ? REDACTED : flat[i + 1];
    const existing = out[name];
    out[name] = existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value];
  }
  return out;
}

function matchesFilter(entry: RecordedExchange, filter: RecordFilter): boolean {
  if (filter.route !== undefined && entry.route !== filter.route) return false;
  const status = filter.status;
  if (status === undefined) return true;
  if (/^[1-5]xx$/i.test(status)) return Math.floor(entry.status / 100) === Number(status[0]);
  return String(entry.status) === status;
}

/** UTF-16 strings: two bytes a character, plus fixed costs per record and attempt. */
function estimateBytes(entry: RecordedExchange): number {
  let chars = entry.requestId.length + entry.path.length + entry.host.length + entry.method.length + (entry.route?.length ?? 0) + (entry.cluster?.length ?? 0);
  chars += headerChars(entry.requestHeaders) + headerChars(entry.responseHeaders);
  for (const decision of entry.decisions) chars += decision.length;
  let bytes = RECORD_OVERHEAD_BYTES + chars * 2;
  for (const attempt of entry.attempts) bytes += ATTEMPT_OVERHEAD_BYTES + attempt.endpoint.length * 2;
  return bytes;
}

function headerChars(flat: readonly string[]): number {
  let chars = 0;
  for (let i = 0; i < flat.length; i++) chars += flat[i].length;
  return chars;
}
