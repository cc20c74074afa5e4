import type { BreakerOutcome } from '../policy/circuit-breaker';
import type { ErrorCode } from '../core/errors';
import type { AttemptFailure } from '../upstream/error-map';
import type { AttemptControl, ChainContext } from './context';
import { Interceptor } from './interceptor';

/**
 * The cluster's circuit breaker (policy/circuit-breaker.ts): one ticket per request, taken on
 * the way down (an open circuit answers 503 CIRCUIT_OPEN) and settled once, in `settle`, with
 * the request's final outcome as it passes up: below this step the retries happen, so a
 * request a retry saved counts as a success.
 */
export class BreakerInterceptor extends Interceptor {
  dispatch(x: ChainContext): void {
    const breaker = x.cluster.breaker;
    const ticket = breaker.admit();
    if (ticket === undefined) {
      this.up!.onRefused(x, 'CIRCUIT_OPEN', `the circuit breaker of cluster ${x.cluster.config.name} is ${breaker.state}`);
      return;
    }
    x.breakerTicket = ticket;
    this.next!.dispatch(x);
  }

  override onResponse(x: ChainContext, handler: AttemptControl, statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    settle(x, statusCode >= 500 ? 'failure' : 'success');
    return this.up!.onResponse(x, handler, statusCode, rawHeaders, resume, statusText);
  }

  override onFailure(x: ChainContext, failure: AttemptFailure): void {
    // The client's own body failing says nothing about the app.
    settle(x, failure.kind === 'request-body' ? 'neutral' : 'failure');
    this.up!.onFailure(x, failure);
  }

  override onRefused(x: ChainContext, code: ErrorCode, message: string): void {
    // Refused before any attempt, the request says nothing about the app; refused for a
    // retry, it ends a request the app failed.
    settle(x, x.attempt > 0 ? 'failure' : 'neutral');
    this.up!.onRefused(x, code, message);
  }

  override onClientTimeout(x: ChainContext, message: string): void {
    // The client was late with its body: nothing is counted against the app.
    settle(x, 'neutral');
    this.up!.onClientTimeout(x, message);
  }

  override onEnd(x: ChainContext): void {
    this.next!.onEnd(x);
    // Ended without an outcome (the client went away).
    settle(x, 'neutral');
  }
}

/** The one place a ticket is settled; later calls find none. */
function settle(x: ChainContext, outcome: BreakerOutcome): void {
  const ticket = x.breakerTicket;
  if (ticket !== undefined) {
    x.breakerTicket = undefined;
    ticket.settle(outcome);
  }
}
