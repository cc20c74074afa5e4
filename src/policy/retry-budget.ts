import type { RetryBudgetConfig } from '../config/types';
import { RETRY_BUDGET_WINDOW_BUCKETS, RETRY_BUDGET_WINDOW_MS } from '../config/defaults';

/** Milliseconds from an arbitrary origin that never goes backwards; injected by tests. */
export type MonotonicClock = () => number;

export interface RetryBudgetView {
  readonly ratio: number;
  readonly minPerSecond: number;
  readonly windowSeconds: number;
  /** First tries in the window. */
  readonly requests: number;
  readonly retries: number;
  /** Retries that may still be made now. */
  readonly available: number;
}

/**
 * A cluster's retry budget, as Linkerd's: over a sliding window, retries may number at most
 * `ratio` × the first tries plus `minPerSecond` × the window's seconds. The reserve keeps a
 * quiet cluster able to retry at all; the ratio keeps a failing one from multiplying its load
 * (with ratio 0.2 an outage adds at most 20% more requests, however many attempts routes allow).
 *
 * The window is a ring of slices advanced lazily from the clock on each call: no timer.
 */
export class RetryBudget {
  private readonly sliceMs: number;
  private readonly requests: Float64Array;
  private readonly retries: Float64Array;
  private slice = 0;
  private sliceStartedAt: number;
  private requestTotal = 0;
  private retryTotal = 0;
  private readonly reserve: number;

  constructor(
    private readonly config: RetryBudgetConfig,
    private readonly clock: MonotonicClock = performance.now.bind(performance),
    private readonly windowMs: number = RETRY_BUDGET_WINDOW_MS,
    buckets: number = RETRY_BUDGET_WINDOW_BUCKETS,
  ) {
    this.sliceMs = windowMs / buckets;
    this.requests = new Float64Array(buckets);
    this.retries = new Float64Array(buckets);
    this.sliceStartedAt = clock();
    this.reserve = config.minPerSecond * (windowMs / 1000);
  }

  /** A first try was sent: it earns `ratio` of a retry. */
  recordRequest(): void {
    this.advance();
    this.requests[this.slice]++;
    this.requestTotal++;
  }

  /** Whether one more retry fits; spends nothing. */
  canRetry(): boolean {
    this.advance();
    return this.available() >= 1;
  }

  /** A retry was sent. */
  recordRetry(): void {
    this.advance();
    this.retries[this.slice]++;
    this.retryTotal++;
  }

  view(): RetryBudgetView {
    this.advance();
    return {
      ratio: this.config.ratio,
      minPerSecond: this.config.minPerSecond,
      windowSeconds: this.windowMs / 1000,
      requests: this.requestTotal,
      retries: this.retryTotal,
      available: Math.max(0, Math.floor(this.available())),
    };
  }

  private available(): number {
    return this.reserve + this.config.ratio * this.requestTotal - this.retryTotal;
  }

  /** Drops the slices that fell out of the window since the last call. */
  private advance(): void {
    const now = this.clock();
    const elapsed = Math.floor((now - this.sliceStartedAt) / this.sliceMs);
    if (elapsed <= 0) return;
    const n = this.requests.length;
    const steps = Math.min(elapsed, n);
    for (let i = 0; i < steps; i++) {
      this.slice = (this.slice + 1) % n;
      this.requestTotal -= this.requests[this.slice];
      this.retryTotal -= this.retries[this.slice];
      this.requests[this.slice] = 0;
      this.retries[this.slice] = 0;
    }
    this.sliceStartedAt += elapsed * this.sliceMs;
  }
}
