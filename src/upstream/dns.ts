import { promises as dns } from 'node:dns';
import { DNS_FAILURE_RETRY_MS, DNS_MIN_EARLY_REFRESH_INTERVAL_MS } from '../config/defaults';

/**
 * Every address a host name has now (A and AAAA), in the order the resolver gives them.
 * Rejects when the name cannot be resolved. Injectable so tests resolve without a network.
 */
export type HostResolver = (hostname: string) => Promise<readonly string[]>;

/**
 * The system's resolver (getaddrinfo: /etc/hosts, then DNS, as every other program on the
 * machine sees names), all records, in the order it returns them.
 */
export const systemResolver: HostResolver = async (hostname) => {
  const records = await dns.lookup(hostname, { all: true, verbatim: true });
  return records.map((r) => r.address);
};

export interface NameResolutionView {
  readonly name: string;
  readonly addresses: readonly string[];
  readonly lastResolvedAt: string | null;
  readonly lastError: string | null;
  readonly resolutions: number;
  readonly failures: number;
}

export interface NameResolutionEvents {
  /** A resolution gave a set of addresses different from the last good one (the first success included). */
  changed(addresses: readonly string[], previous: readonly string[]): void;
  /** A resolution failed; the last good addresses stay in use. */
  failed(error: string, kept: readonly string[]): void;
  /** Every resolution that ended, before `changed`/`failed`. */
  resolved(ok: boolean): void;
}

/**
 * One host name of a cluster's endpoints (Envoy's strict DNS): every address it resolves to
 * is an endpoint. It is resolved again every `refreshMs`, and sooner (at most once per
 * DNS_MIN_EARLY_REFRESH_INTERVAL_MS) when a connection to one of its addresses fails. A
 * failed resolution keeps the last good addresses; an empty answer counts as a failure, so
 * a resolver hiccup never empties the cluster. After a failure the next try comes after
 * DNS_FAILURE_RETRY_MS (or refreshMs when shorter).
 *
 * One resolution at a time; `stop` clears the timer and drops any answer still coming.
 */
export class NameResolution {
  addresses: readonly string[] = [];
  private lastResolvedAt: number | undefined;
  private lastError: string | undefined;
  private resolutions = 0;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private lastStartedAt = 0;
  private stopped = false;
  private scheduling = false;

  constructor(
    readonly name: string,
    private readonly refreshMs: number,
    private readonly resolver: HostResolver,
    private readonly events: NameResolutionEvents,
  ) {}

  /** Resolves now unless a resolution is in flight; the promise settles when that one ends. */
  resolve(): Promise<void> {
    if (this.inFlight !== undefined) return this.inFlight;
    if (this.stopped) return Promise.resolve();
    this.lastStartedAt = Date.now();
    this.inFlight = this.run().finally(() => {
      this.inFlight = undefined;
      if (this.scheduling) this.schedule(this.lastError === undefined ? this.refreshMs : Math.min(this.refreshMs, DNS_FAILURE_RETRY_MS));
    });
    return this.inFlight;
  }

  /** Starts the refresh timer (the first resolution runs now unless one already ran or runs). */
  start(): void {
    if (this.stopped || this.scheduling) return;
    this.scheduling = true;
    if (this.inFlight !== undefined) return; // its end schedules the next
    if (this.resolutions === 0) void this.resolve();
    else this.schedule(this.lastError === undefined ? this.refreshMs : Math.min(this.refreshMs, DNS_FAILURE_RETRY_MS));
  }

  /** A connection to one of the addresses failed: the records may have moved. */
  connectFailed(): void {
    if (!this.scheduling || this.inFlight !== undefined) return;
    if (Date.now() - this.lastStartedAt < DNS_MIN_EARLY_REFRESH_INTERVAL_MS) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    void this.resolve();
  }

  stop(): void {
    this.stopped = true;
    this.scheduling = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  view(): NameResolutionView {
    return {
      name: this.name,
      addresses: this.addresses,
      lastResolvedAt: this.lastResolvedAt === undefined ? null : new Date(this.lastResolvedAt).toISOString(),
      lastError: this.lastError ?? null,
      resolutions: this.resolutions,
      failures: this.failures,
    };
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(refreshName, delayMs, this);
    this.timer.unref();
  }

  private async run(): Promise<void> {
    let answer: readonly string[] | undefined;
    let error: string | undefined;
    try {
      answer = unique(await this.resolver(this.name));
      if (answer.length === 0) error = 'the name has no A or AAAA record';
    } catch (failure) {
      error = describe(failure);
    }
    if (this.stopped) return;
    this.resolutions++;
    if (error !== undefined || answer === undefined) {
      this.failures++;
      this.lastError = error ?? 'no answer';
      this.events.resolved(false);
      this.events.failed(this.lastError, this.addresses);
      return;
    }
    this.lastError = undefined;
    this.lastResolvedAt = Date.now();
    this.events.resolved(true);
    const previous = this.addresses;
    if (sameSet(previous, answer)) return;
    this.addresses = answer;
    this.events.changed(answer, previous);
  }
}

function refreshName(resolution: NameResolution): void {
  void resolution.resolve();
}

function unique(addresses: readonly string[]): readonly string[] {
  return [...new Set(addresses.map((a) => a.toLowerCase()))];
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code !== undefined && !error.message.includes(code) ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
