import type { RecorderConfig } from '../config/types';

/**
 * The flight recorder: the timeline of recent requests (route, each attempt, the policies'
 * decisions, flags, sizes, headers with secrets redacted; never bodies), for
 * `GET /requests` and `GET /requests/{x-request-id}`.
 *
 * Two bounded lists: the last `requests` requests of any outcome, and the last `failures`
 * failures besides, so a failure stays findable however many successes follow it. Both are
 * rings (recording is a slot write); a client-chosen id seen again is shown once, its newest
 * entry. The estimated size of all entries is bounded by `maxBytes`; past it the oldest
 * entries go first.
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
export interface RecordedExchange extends Omit<RequestRecord, 'at' | 'host' | 'requestHeaders' | 'responseHeaders'> {
  /** ms since the epoch when the request arrived. */
  readonly atMs: number;
  /** The Host (or :authority) header as received, '' when none. */
  readonly host: string;
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
/** What one record costs beyond its strings (object headers, numbers, ring slots). */
const RECORD_OVERHEAD_BYTES = 400;
const ATTEMPT_OVERHEAD_BYTES = 120;

export class FlightRecorder {
  private recent: ExchangeRing;
  private failures: ExchangeRing;
  /** Order of recording (times may tie within a millisecond). */
  private sequence = 0;

  constructor(private config: RecorderConfig) {
    this.recent = new ExchangeRing(config.requests);
    this.failures = new ExchangeRing(config.failures);
  }

  /** A reload changed `admin.recorder`: the new bounds apply now, the newest entries kept. */
  configure(config: RecorderConfig): void {
    this.config = config;
    if (this.recent.capacity !== config.requests) this.recent = this.recent.resized(config.requests);
    if (this.failures.capacity !== config.failures) this.failures = this.failures.resized(config.failures);
    this.trimBytes();
  }

  /**
   * Estimated bytes of what is kept now. A failure is in both lists and counted in each: the
   * estimate errs high, never low.
   */
  get sizeBytes(): number {
    return this.recent.bytes + this.failures.bytes;
  }

  /** Entries held in each list (an id recorded again is held twice until the older one leaves). */
  get size(): { readonly requests: number; readonly failures: number } {
    return { requests: this.recent.count, failures: this.failures.count };
  }

  /**
   * Keeps the entry by reference (the caller does not change it afterwards). Constant time and
   * no allocation: the request path pays for a slot write, not for an index; lookups by id scan
   * the lists when someone reads them.
   */
  record(entry: RecordedExchange): void {
    const sequence = this.sequence++;
    const bytes = estimateBytes(entry);
    const redacted = this.config.redactHeaders;
    this.recent.push(entry, sequence, bytes, redacted);
    if (isFailure(entry)) this.failures.push(entry, sequence, bytes, redacted);
    this.trimBytes();
  }

  /** The newest entry with this id (a client may send the same `x-request-id` twice). */
  get(requestId: string): RequestRecord | undefined {
    const a = this.recent.newestWithId(requestId);
    const b = this.failures.newestWithId(requestId);
    const found = a === undefined ? b : b === undefined || a.sequence >= b.sequence ? a : b;
    return found === undefined ? undefined : viewOf(found);
  }

  /** Both lists merged, most recent first, filtered, each id once (its newest entry). */
  list(filter: RecordFilter = {}): RequestRecord[] {
    const all = [...this.recent.slots(), ...this.failures.slots()].sort((a, b) => b.sequence - a.sequence);
    const seen = new Set<string>();
    const out: RequestRecord[] = [];
    for (const slot of all) {
      if (filter.limit !== undefined && out.length >= filter.limit) break;
      if (seen.has(slot.entry.requestId)) continue;
      seen.add(slot.entry.requestId);
      if (matchesFilter(slot.entry, filter)) out.push(viewOf(slot));
    }
    return out;
  }

  /** Past the byte cap the oldest entry of the two lists goes first. */
  private trimBytes(): void {
    const maxBytes = this.config.maxBytes;
    while (this.recent.bytes + this.failures.bytes > maxBytes) {
      const recentOldest = this.recent.oldestSequence();
      const failuresOldest = this.failures.oldestSequence();
      if (recentOldest === Infinity && failuresOldest === Infinity) break;
      if (recentOldest <= failuresOldest) this.recent.dropOldest();
      else this.failures.dropOldest();
    }
  }
}

/** One kept entry as the readers see it. */
interface Slot {
  readonly entry: RecordedExchange;
  readonly sequence: number;
  /** The names redacted when it was recorded: a reload that drops a name does not reveal earlier values. */
  readonly redacted: ReadonlySet<string>;
}

/**
 * A fixed number of recorded exchanges, the oldest overwritten first. Parallel arrays, so that
 * recording allocates nothing of its own.
 */
class ExchangeRing {
  readonly capacity: number;
  private readonly entries: (RecordedExchange | undefined)[];
  private readonly sequences: Float64Array;
  private readonly sizes: Float64Array;
  private readonly redactions: (ReadonlySet<string> | undefined)[];
  /** Where the next entry goes. */
  private next = 0;
  count = 0;
  bytes = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.entries = new Array<RecordedExchange | undefined>(capacity).fill(undefined);
    this.sequences = new Float64Array(capacity);
    this.sizes = new Float64Array(capacity);
    this.redactions = new Array<ReadonlySet<string> | undefined>(capacity).fill(undefined);
  }

  push(entry: RecordedExchange, sequence: number, bytes: number, redacted: ReadonlySet<string>): void {
    if (this.capacity === 0) return;
    const index = this.next;
    if (this.count === this.capacity) this.bytes -= this.sizes[index];
    else this.count++;
    this.entries[index] = entry;
    this.sequences[index] = sequence;
    this.sizes[index] = bytes;
    this.redactions[index] = redacted;
    this.bytes += bytes;
    this.next = index + 1 === this.capacity ? 0 : index + 1;
  }

  /** The sequence of the oldest entry; Infinity when empty. */
  oldestSequence(): number {
    return this.count === 0 ? Infinity : this.sequences[this.oldestIndex()];
  }

  dropOldest(): void {
    if (this.count === 0) return;
    const index = this.oldestIndex();
    this.bytes -= this.sizes[index];
    this.entries[index] = undefined;
    this.redactions[index] = undefined;
    this.count--;
  }

  /** Oldest first. */
  slots(): Slot[] {
    const out: Slot[] = [];
    for (let i = 0, index = this.oldestIndex(); i < this.count; i++, index = index + 1 === this.capacity ? 0 : index + 1) {
      out.push({ entry: this.entries[index]!, sequence: this.sequences[index], redacted: this.redactions[index]! });
    }
    return out;
  }

  newestWithId(requestId: string): Slot | undefined {
    for (let i = 0, index = this.next; i < this.count; i++) {
      index = index === 0 ? this.capacity - 1 : index - 1;
      const entry = this.entries[index]!;
      if (entry.requestId === requestId) return { entry, sequence: this.sequences[index], redacted: this.redactions[index]! };
    }
    return undefined;
  }

  /** A ring of another capacity holding this one's newest entries. */
  resized(capacity: number): ExchangeRing {
    const ring = new ExchangeRing(capacity);
    for (const slot of this.slots()) ring.push(slot.entry, slot.sequence, estimateBytes(slot.entry), slot.redacted);
    return ring;
  }

  private oldestIndex(): number {
    const index = this.next - this.count;
    return index < 0 ? index + this.capacity : index;
  }
}

export function isFailure(entry: Pick<RequestRecord, 'status' | 'error'>): boolean {
  return entry.status >= 500 || entry.error !== null;
}

function viewOf(slot: Slot): RequestRecord {
  const { atMs, requestHeaders, responseHeaders, ...rest } = slot.entry;
  return {
    ...rest,
    at: new Date(atMs).toISOString(),
    host: hostWithoutPort(slot.entry.host),
    requestHeaders: redactedHeaderMap(requestHeaders, slot.redacted),
    responseHeaders: redactedHeaderMap(responseHeaders, slot.redacted),
  };
}

/** Lower-case, without the port: `[::1]:8080` → `[::1]`, `Example.com:80` → `example.com`. */
function hostWithoutPort(host: string): string {
  const colon = host.lastIndexOf(':');
  return (colon > host.lastIndexOf(']') ? host.slice(0, colon) : host).toLowerCase();
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
