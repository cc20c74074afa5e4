import type { ErrorCode } from '../core/errors';
import type { AttemptFailure } from '../upstream/error-map';
import type { ChainContext } from './context';
import { Interceptor } from './interceptor';

/**
 * The request's one clock: it ends the current try at its per-try timeout when that comes
 * first, else the exchange at the route deadline (all attempts and waits included). One
 * timer serves both, so a route with retries configured costs no timer more than one without
 * while no retry happens. The clock runs until a try has its response headers (from then on
 * the route timeout bounds the silence between two body chunks, in the terminal's dispatch)
 * and is stopped between attempts (a backoff ends before the deadline: decideRetry checks it).
 */
export class DeadlineInterceptor extends Interceptor {
  constructor(
    private readonly timeoutMs: number,
    /** The route's `retry.perTryTimeout`, undefined when it has none (or no retry policy). */
    private readonly perTryTimeoutMs: number | undefined,
  ) {
    super();
  }

  dispatch(x: ChainContext): void {
    // A gRPC client's grpc-timeout caps the route timeout; it can only shorten it.
    const grpcTimeoutMs = x.grpcTimeoutMs;
    const timeoutMs = grpcTimeoutMs !== undefined && grpcTimeoutMs < this.timeoutMs ? grpcTimeoutMs : this.timeoutMs;
    x.deadlineAt = performance.now() + timeoutMs;
    this.startClock(x, true);
    this.next!.dispatch(x);
  }

  override onAttemptStart(x: ChainContext): void {
    // A retry (the clock stopped after the last try), or a first try that waited for a slot:
    // its per-try timeout counts from its dispatch, not from the wait.
    if (x.clock === undefined) this.startClock(x, true);
    else if (this.perTryTimeoutMs !== undefined && x.attempt === 1 && x.waitedForSlot) {
      stopClock(x);
      this.startClock(x, true);
    }
  }

  override onAttemptEnd(x: ChainContext): void {
    // Headers arrived, or the try failed: neither the per-try timeout nor the deadline applies to it any more.
    stopClock(x);
  }

  override onFailure(x: ChainContext, failure: AttemptFailure): void {
    stopClock(x);
    this.up!.onFailure(x, failure);
  }

  override onRefused(x: ChainContext, code: ErrorCode, message: string): void {
    stopClock(x);
    this.up!.onRefused(x, code, message);
  }

  override onClientTimeout(x: ChainContext, message: string): void {
    stopClock(x);
    this.up!.onClientTimeout(x, message);
  }

  /** @internal the per-try timeout or the deadline, whichever the clock was armed for, is up. */
  onClock(x: ChainContext): void {
    x.clock = undefined;
    if (x.responseStarted || x.finished) return;
    if (x.clockIsPerTry) {
      // No try in flight (still waiting for a slot): the clock goes on towards the deadline.
      if (!this.next!.onPerTryTimeout(x)) this.startClock(x, false);
      return;
    }
    x.deadlineExpired = true;
    this.next!.onDeadline(x);
  }

  override onEnd(x: ChainContext): void {
    this.next!.onEnd(x);
    stopClock(x);
  }

  /** Arms the clock for what comes first: the per-try timeout of the next try, or the deadline. */
  private startClock(x: ChainContext, forTry: boolean): void {
    const remainingMs = Math.max(0, x.deadlineAt - performance.now());
    const perTryTimeoutMs = this.perTryTimeoutMs;
    x.clockIsPerTry = forTry && perTryTimeoutMs !== undefined && perTryTimeoutMs < remainingMs;
    x.clock = setTimeout(clockExpired, x.clockIsPerTry ? perTryTimeoutMs : remainingMs, x);
  }
}

function stopClock(x: ChainContext): void {
  if (x.clock !== undefined) {
    clearTimeout(x.clock);
    x.clock = undefined;
  }
}

// Timers take the exchange as an argument: no closure is allocated per request.
function clockExpired(x: ChainContext): void {
  x.chain.deadline.onClock(x);
}
