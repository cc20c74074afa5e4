import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import type { CircuitBreakerConfig } from '../config/types';
import { CB_WINDOW_BUCKETS } from '../config/defaults';
import { BREAKER_STATE_VALUE, type BreakerState } from './breaker-state';

export { BREAKER_STATE_VALUE, type BreakerState };

/**
 * How one request counts for the breaker, by its final outcome (retries included: a request
 * a retry saved is a success). `failure`: a connect failure, a timeout, a reset or a 5xx.
 * `success`: any other response (a 4xx is the client's problem, never the app's). `neutral`:
 * the request ended without telling anything about the app (the client went away, its own
 * body failed, it was refused before any attempt).
 */
export type BreakerOutcome = 'success' | 'failure' | 'neutral';

export interface BreakerView {
  readonly state: BreakerState;
  readonly errorThresholdPercentage: number;
  readonly volumeThreshold: number;
  readonly windowMs: number;
  readonly resetTimeoutMs: number;
  /** Counts over the current window. */
  readonly window: { readonly calls: number; readonly successes: number; readonly failures: number; readonly rejected: number };
  /** Since the breaker was created. */
  readonly opened: number;
  readonly rejected: number;
}

/** One admitted request's place in the breaker; settled exactly once. */
export class BreakerTicket {
  /** Set by the breaker's action when opossum let the call through. */
  admitted = false;
  private resolve: (() => void) | undefined;
  private reject: ((error: Error) => void) | undefined;

  constructor(private readonly breaker: ClusterBreaker) {}

  /** opossum's action: runs when the call is admitted, settles when the request's outcome is known. */
  start(): Promise<void> {
    this.admitted = true;
    return new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  settle(outcome: BreakerOutcome): void {
    const resolve = this.resolve;
    const reject = this.reject;
    if (resolve === undefined || reject === undefined) return;
    this.resolve = undefined;
    this.reject = undefined;
    // A half-open breaker waits on its probe: a probe that told nothing reopens it, so that
    // another probe is sent after resetTimeout rather than closing on no evidence.
    if (outcome === 'failure' || (outcome === 'neutral' && this.breaker.state === 'half-open')) reject(REQUEST_FAILED);
    else resolve();
  }
}

/** Shared: a failure needs no stack trace of its own, and this one is never thrown. */
const REQUEST_FAILED = new Error('the request failed at the upstream');

function runTicket(this: BreakerTicket): Promise<void> {
  return this.start();
}

function ignore(): void {}

/**
 * The error-rate circuit breaker of one cluster, on opossum. opossum owns the statistics and
 * the state machine (closed → open when the failure percentage of the rolling window passes
 * the threshold with at least `volumeThreshold` calls; open → half-open after `resetTimeout`;
 * half-open lets one probe through and closes or reopens on its result). This class adapts
 * it to requests that settle through callbacks instead of promises.
 *
 * Timers: the rolling window is rotated by this class's own interval through opossum's
 * `rotateBucketController` (opossum's snapshot interval is off), so `shutdown` knows every
 * timer there is and clears it.
 */
export class ClusterBreaker {
  state: BreakerState = 'closed';
  private readonly breaker: CircuitBreaker<[], void>;
  private readonly rotation = new EventEmitter();
  private readonly rotationTimer: NodeJS.Timeout;
  private openedCount = 0;
  private rejectedCount = 0;

  constructor(
    readonly config: CircuitBreakerConfig,
    private readonly onStateChange: (state: BreakerState, previous: BreakerState) => void = () => {},
  ) {
    this.breaker = new CircuitBreaker<[], void>(runTicket as () => Promise<void>, {
      timeout: false, // attempts are bounded by the route and per-try timeouts
      errorThresholdPercentage: config.errorThresholdPercentage,
      volumeThreshold: config.volumeThreshold,
      rollingCountTimeout: config.windowMs,
      rollingCountBuckets: CB_WINDOW_BUCKETS,
      resetTimeout: config.resetTimeoutMs,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      rotateBucketController: this.rotation,
    });
    this.rotationTimer = setInterval(rotate, Math.max(1, Math.floor(config.windowMs / CB_WINDOW_BUCKETS)), this.rotation);
    this.rotationTimer.unref();
    this.breaker.on('open', () => this.transition('open'));
    this.breaker.on('halfOpen', () => this.transition('half-open'));
    this.breaker.on('close', () => {
      // A closed circuit starts from a clean window: the failures that opened it must not
      // reopen it on the first new failure.
      for (let i = 0; i < CB_WINDOW_BUCKETS; i++) this.rotation.emit('rotate');
      this.transition('closed');
    });
    this.breaker.on('reject', () => void this.rejectedCount++);
  }

  /**
   * A ticket for one request, or undefined when the circuit does not let it through (open,
   * or half-open with its probe already in flight). The caller settles the ticket.
   */
  admit(): BreakerTicket | undefined {
    const ticket = new BreakerTicket(this);
    this.breaker.call(ticket).catch(ignore);
    return ticket.admitted ? ticket : undefined;
  }

  view(): BreakerView {
    const stats = this.breaker.stats;
    return {
      state: this.state,
      errorThresholdPercentage: this.config.errorThresholdPercentage,
      volumeThreshold: this.config.volumeThreshold,
      windowMs: this.config.windowMs,
      resetTimeoutMs: this.config.resetTimeoutMs,
      window: { calls: stats.fires - stats.rejects, successes: stats.successes, failures: stats.failures, rejected: stats.rejects },
      opened: this.openedCount,
      rejected: this.rejectedCount,
    };
  }

  /** Stops every timer; calls after this are rejected. */
  shutdown(): void {
    clearInterval(this.rotationTimer);
    this.breaker.shutdown();
  }

  private transition(state: BreakerState): void {
    const previous = this.state;
    if (previous === state) return;
    this.state = state;
    if (state === 'open') this.openedCount++;
    this.onStateChange(state, previous);
  }
}

function rotate(rotation: EventEmitter): void {
  rotation.emit('rotate');
}
