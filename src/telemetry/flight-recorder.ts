import type { RecorderConfig } from '../config/types';
import { exchangeFromText, exchangeToText, type ExchangeNumbers } from './recorded-exchange-text';

/**
 * The flight recorder: the timeline of recent requests (route, each attempt, the policies'
 * decisions, flags, sizes, headers with secrets redacted; never bodies), for
 * `GET /requests` and `GET /requests/{x-request-id}`.
 *
 * Two bounded lists: the last `requests` requests of any outcome, and the last `failures`
 * failures besides, so a failure stays findable however many successes follow it. Both are
 * rings of bytes outside the JavaScript heap (recording writes a line of text and keeps no
 * object of the request); a client-chosen id seen again is shown once, its newest entry. The
 * two lists share `maxBytes` in proportion to their lengths; past its share, a list drops its
 * oldest entries first.
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
 * headers, the response headers as relayed). The recorder writes it out as text at once and
 * keeps none of it; names are lower-cased and values redacted when the JSON form
 * (RequestRecord) is built, only when someone reads it, with the redacted names in force when
 * the exchange was recorded.
 */
export interface RecordedExchange extends Omit<RequestRecord, 'at' | 'host' | 'requestHeaders' | 'responseHeaders'> {
  /** ms since the epoch when the request arrived. */
  readonly atMs: number;
  /** The Host (or :authority) header as received, '' when none. */
  readonly host: string;
  readonly requestHeaders: readonly string[];
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
/** A ring's first buffer; it doubles, up to its share of `maxBytes`, while its count is not reached. */
const INITIAL_RING_BYTES = 64 * 1024;
/** A ring slot's numbers: where its text lies, its order, and the record's numeric fields. */
const OFFSET = 0;
const LENGTH = 1;
const SEQUENCE = 2;
const AT_MS = 3;
const STATUS = 4;
const DURATION_MS = 5;
const BYTES_IN = 6;
const BYTES_OUT = 7;
const SLOT_FIELDS = 8;

export class FlightRecorder {
  private recent: ExchangeRing;
  private failures: ExchangeRing;
  /** Order of recording (times may tie within a millisecond). */
  private sequence = 0;

  constructor(private config: RecorderConfig) {
    const [recentBytes, failureBytes] = byteShares(config);
    this.recent = new ExchangeRing(config.requests, recentBytes);
    this.failures = new ExchangeRing(config.failures, failureBytes);
  }

  /** A reload changed `admin.recorder`: the new bounds apply now, the newest entries kept. */
  configure(config: RecorderConfig): void {
    this.config = config;
    const [recentBytes, failureBytes] = byteShares(config);
    if (this.recent.capacity !== config.requests || this.recent.byteLimit !== recentBytes) this.recent = this.recent.resized(config.requests, recentBytes);
    if (this.failures.capacity !== config.failures || this.failures.byteLimit !== failureBytes) this.failures = this.failures.resized(config.failures, failureBytes);
  }

  /** Bytes of the records kept now (a failure is in both lists and counted in each). */
  get sizeBytes(): number {
    return this.recent.bytes + this.failures.bytes;
  }

  /** Entries held in each list (an id recorded again is held twice until the older one leaves). */
  get size(): { readonly requests: number; readonly failures: number } {
    return { requests: this.recent.count, failures: this.failures.count };
  }

  /**
   * Writes the entry into the rings as text (recorded-exchange-text.ts) and keeps no reference
   * to it or to anything it holds: nothing of a request stays on the heap after its exchange.
   */
  record(entry: RecordedExchange): void {
    if (this.recent.capacity === 0 && this.failures.capacity === 0) return;
    const sequence = this.sequence++;
    const text = exchangeToText(entry);
    const redacted = this.config.redactHeaders;
    this.recent.push(text, entry, sequence, redacted);
    if (isFailure(entry)) this.failures.push(text, entry, sequence, redacted);
  }

  /** The newest entry with this id (a client may send the same `x-request-id` twice). */
  get(requestId: string): RequestRecord | undefined {
    const a = this.recent.newestWithId(requestId);
    const b = this.failures.newestWithId(requestId);
    const found = a === undefined ? b : b === undefined || a.sequence >= b.sequence ? a : b;
    return found === undefined ? undefined : viewOf(found);
  }

  /**
   * Both lists merged, most recent first, filtered, each id once (its newest entry). Only what
   * is listed is decoded: the dashboard asks for the last few 5xx every second, and the ids and
   * statuses it skips are read without decoding their records.
   */
  list(filter: RecordFilter = {}): RequestRecord[] {
    const all = [...this.recent.refs(), ...this.failures.refs()].sort((a, b) => b.sequence - a.sequence);
    const seen = new Set<string>();
    const out: RequestRecord[] = [];
    for (const { ring, slot } of all) {
      if (filter.limit !== undefined && out.length >= filter.limit) break;
      const requestId = ring.requestIdAt(slot);
      if (seen.has(requestId)) continue;
      seen.add(requestId);
      if (filter.status !== undefined && !statusMatches(ring.statusAt(slot), filter.status)) continue;
      const found = ring.slotAt(slot);
      if (filter.route === undefined || found.entry.route === filter.route) out.push(viewOf(found));
    }
    return out;
  }
}

/** The two lists share `maxBytes` in proportion to how many entries each keeps. */
function byteShares(config: RecorderConfig): [number, number] {
  const entries = config.requests + config.failures;
  if (entries === 0) return [0, 0];
  const recent = Math.floor((config.maxBytes * config.requests) / entries);
  return [recent, config.maxBytes - recent];
}

/** A kept entry not decoded yet. */
interface SlotRef {
  readonly ring: ExchangeRing;
  readonly slot: number;
  readonly sequence: number;
}

/** One kept entry as the readers see it. */
interface Slot {
  readonly entry: RecordedExchange;
  readonly sequence: number;
  /** The names redacted when it was recorded: a reload that drops a name does not reveal earlier values. */
  readonly redacted: ReadonlySet<string>;
}

/**
 * The last `capacity` exchanges, as UTF-8 text in one buffer outside the JavaScript heap, the
 * oldest overwritten first. Records lie in the buffer in the order they were written, wrapping
 * to its start; each slot (a ring of its own, indexed like the records) holds where its record
 * lies and the numbers kept beside the text. Invariant: the oldest record is the first one
 * after the write position in buffer order, so freeing room always means dropping the oldest.
 * The buffer starts small and doubles up to `byteLimit` only when the records that the count
 * allows do not fit.
 */
class ExchangeRing {
  readonly capacity: number;
  readonly byteLimit: number;
  private buffer: Buffer;
  /** Where the next record's bytes go. */
  private writeAt = 0;
  /** Each slot's numbers side by side (SLOT_FIELDS apart): one cache line a record, not one an array. */
  private readonly numbers: Float64Array;
  /** Long-lived sets from the config: a slot holds one by reference. */
  private readonly redactions: (ReadonlySet<string> | undefined)[];
  /** The slot of the next record. */
  private next = 0;
  count = 0;
  /** Bytes of the records kept. */
  bytes = 0;

  constructor(capacity: number, byteLimit: number) {
    this.capacity = capacity;
    this.byteLimit = capacity === 0 ? 0 : byteLimit;
    this.buffer = Buffer.alloc(Math.min(INITIAL_RING_BYTES, this.byteLimit));
    this.numbers = new Float64Array(capacity * SLOT_FIELDS);
    this.redactions = new Array<ReadonlySet<string> | undefined>(capacity).fill(undefined);
  }

  push(text: string, numbers: ExchangeNumbers, sequence: number, redacted: ReadonlySet<string>): void {
    // UTF-8 takes at most three bytes for each UTF-16 unit: room for that is enough.
    const need = text.length * 3;
    if (this.capacity === 0 || need > this.byteLimit) return; // larger than the whole ring: not kept
    if (this.count === this.capacity) this.dropOldest();
    const offset = this.room(need);
    const length = this.buffer.write(text, offset, 'utf8');
    const slot = this.next;
    const at = slot * SLOT_FIELDS;
    const kept = this.numbers;
    kept[at + OFFSET] = offset;
    kept[at + LENGTH] = length;
    kept[at + SEQUENCE] = sequence;
    kept[at + AT_MS] = numbers.atMs;
    kept[at + STATUS] = numbers.status;
    kept[at + DURATION_MS] = numbers.durationMs;
    kept[at + BYTES_IN] = numbers.bytesIn;
    kept[at + BYTES_OUT] = numbers.bytesOut;
    this.redactions[slot] = redacted;
    this.writeAt = offset + length;
    this.bytes += length;
    this.count++;
    this.next = slot + 1 === this.capacity ? 0 : slot + 1;
  }

  /** Where `need` bytes (at most `byteLimit`) can be written: free room, else a larger buffer, else the oldest records' room. */
  private room(need: number): number {
    for (;;) {
      const end = this.buffer.length;
      if (this.count === 0) {
        if (need <= end) return 0;
      } else {
        const oldest = this.numbers[this.oldestIndex() * SLOT_FIELDS + OFFSET];
        const from = this.writeAt;
        // Not wrapped: the records are [oldest, from); room after them, or before them at the start.
        if (oldest < from) {
          if (need <= end - from) return from;
          if (need <= oldest) return 0;
        } else if (need <= oldest - from) {
          return from;
        }
      }
      // need <= byteLimit (push checked): the loop ends at the latest when the ring is empty.
      if (end < this.byteLimit) this.grow(need);
      else this.dropOldest();
    }
  }

  /** A buffer twice as large (at least the kept records and `need`, at most `byteLimit`), the records copied to its start in order. */
  private grow(need: number): void {
    let size = Math.max(this.buffer.length * 2, 1024);
    while (size < this.bytes + need && size < this.byteLimit) size *= 2;
    const grown = Buffer.alloc(Math.min(size, this.byteLimit));
    let at = 0;
    for (let i = 0, slot = this.oldestIndex(); i < this.count; i++, slot = slot + 1 === this.capacity ? 0 : slot + 1) {
      const offset = this.numbers[slot * SLOT_FIELDS + OFFSET];
      const length = this.numbers[slot * SLOT_FIELDS + LENGTH];
      this.buffer.copy(grown, at, offset, offset + length);
      this.numbers[slot * SLOT_FIELDS + OFFSET] = at;
      at += length;
    }
    this.buffer = grown;
    this.writeAt = at;
  }

  dropOldest(): void {
    if (this.count === 0) return;
    const slot = this.oldestIndex();
    this.bytes -= this.numbers[slot * SLOT_FIELDS + LENGTH];
    this.redactions[slot] = undefined;
    this.count--;
    if (this.count === 0) this.writeAt = 0;
  }

  /** The kept slots, oldest first, undecoded. */
  refs(): SlotRef[] {
    const out: SlotRef[] = [];
    for (let i = 0, slot = this.oldestIndex(); i < this.count; i++, slot = slot + 1 === this.capacity ? 0 : slot + 1) out.push({ ring: this, slot, sequence: this.sequenceAt(slot) });
    return out;
  }

  newestWithId(requestId: string): Slot | undefined {
    for (let i = 0, slot = this.next; i < this.count; i++) {
      slot = slot === 0 ? this.capacity - 1 : slot - 1;
      if (this.requestIdAt(slot) === requestId) return this.slotAt(slot);
    }
    return undefined;
  }

  /** A ring of other bounds holding as many of this one's newest entries as they allow. */
  resized(capacity: number, byteLimit: number): ExchangeRing {
    const ring = new ExchangeRing(capacity, byteLimit);
    for (let i = 0, slot = this.oldestIndex(); i < this.count; i++, slot = slot + 1 === this.capacity ? 0 : slot + 1) {
      ring.push(this.textAt(slot), this.numbersAt(slot), this.sequenceAt(slot), this.redactions[slot]!);
    }
    return ring;
  }

  slotAt(slot: number): Slot {
    return { entry: exchangeFromText(this.textAt(slot), this.numbersAt(slot)), sequence: this.sequenceAt(slot), redacted: this.redactions[slot]! };
  }

  private sequenceAt(slot: number): number {
    return this.numbers[slot * SLOT_FIELDS + SEQUENCE];
  }

  private textAt(slot: number): string {
    const offset = this.numbers[slot * SLOT_FIELDS + OFFSET];
    return this.buffer.toString('utf8', offset, offset + this.numbers[slot * SLOT_FIELDS + LENGTH]);
  }

  statusAt(slot: number): number {
    return this.numbers[slot * SLOT_FIELDS + STATUS];
  }

  /** The first line only: what a lookup by id compares. */
  requestIdAt(slot: number): string {
    const offset = this.numbers[slot * SLOT_FIELDS + OFFSET];
    const end = offset + this.numbers[slot * SLOT_FIELDS + LENGTH];
    const lineEnd = this.buffer.indexOf(0x0a, offset);
    return this.buffer.toString('utf8', offset, lineEnd === -1 || lineEnd > end ? end : lineEnd);
  }

  private numbersAt(slot: number): ExchangeNumbers {
    const at = slot * SLOT_FIELDS;
    const kept = this.numbers;
    return { atMs: kept[at + AT_MS], status: kept[at + STATUS], durationMs: kept[at + DURATION_MS], bytesIn: kept[at + BYTES_IN], bytesOut: kept[at + BYTES_OUT] };
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

/** `5xx`, `4xx`, or one status such as `503`. */
function statusMatches(status: number, wanted: string): boolean {
  if (/^[1-5]xx$/i.test(wanted)) return Math.floor(status / 100) === Number(wanted[0]);
  return String(status) === wanted;
}
