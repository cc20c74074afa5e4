import type { ErrorCode } from '../core/errors';
import type { Exchange } from './exchange';
import type { AttemptFailure } from '../upstream/error-map';
import type { AttemptControl, ChainContext } from './context';

/**
 * One step of a route's dispatch chain, in undici's interceptor style: it does its part on the
 * way down (`dispatch`) and on the way up (the events an attempt or a policy below reports),
 * and passes everything else on unchanged. A step is built once per route (compose.ts) and
 * shared by the route's requests: what it keeps per request lives in its own fields of the
 * request's one context object (context.ts ChainContext: an Exchange for HTTP, a Tunnel for a
 * WebSocket upgrade), which only this step's file writes.
 *
 * Down: `dispatch` (run the request), `onPerTryTimeout`/`onDeadline` (the clock ran out: end
 * what is in progress below) and `onEnd` (the exchange is over: release, bottom-up).
 * Up: `onAttemptStart`/`onAttemptEnd` (a try began / got its answer), then exactly one final
 * event per answer: `onResponse` (headers to relay), `onFailure` (no response),
 * `onRefused` (a policy refused the request), `onClientTimeout` (the client's body was late),
 * `onDenied` (an edge policy refused) or `onAnswered` (an edge policy answered itself).
 */
export abstract class Interceptor {
  /** The step below; the terminal has none. */
  next: Interceptor | undefined;
  /** The step above; observe (the head) has none. */
  up: Interceptor | undefined;

  abstract dispatch(x: ChainContext): void;

  onAttemptStart(x: ChainContext): void {
    this.up?.onAttemptStart(x);
  }

  onAttemptEnd(x: ChainContext): void {
    this.up?.onAttemptEnd(x);
  }

  /** Response headers of the current attempt; returns what undici's onHeaders returns. */
  onResponse(x: ChainContext, handler: AttemptControl, statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    return this.up === undefined ? false : this.up.onResponse(x, handler, statusCode, rawHeaders, resume, statusText);
  }

  onFailure(x: ChainContext, failure: AttemptFailure): void {
    this.up?.onFailure(x, failure);
  }

  onRefused(x: ChainContext, code: ErrorCode, message: string): void {
    this.up?.onRefused(x, code, message);
  }

  onClientTimeout(x: ChainContext, message: string): void {
    this.up?.onClientTimeout(x, message);
  }

  /**
   * An edge policy (access, auth) refused the request before any attempt; `headers` (a flat
   * [name, value, ...] list) go with the error, e.g. WWW-Authenticate. Edge steps sit above
   * the breaker, so nothing below hears of the refusal and the app is not blamed.
   */
  onDenied(x: Exchange, code: ErrorCode, message: string, headers: readonly string[]): void {
    this.up?.onDenied(x, code, message, headers);
  }

  /** An edge policy answered the request itself (a CORS preflight, an external auth service's refusal). */
  onAnswered(x: Exchange, status: number, headers: readonly string[], body?: Buffer): void {
    this.up?.onAnswered(x, status, headers, body);
  }

  /** The per-try timeout is up: false when no try was in flight (the clock then runs on to the deadline). */
  onPerTryTimeout(x: ChainContext): boolean {
    return this.next === undefined ? false : this.next.onPerTryTimeout(x);
  }

  /** The route timeout is up and no response started: the step holding the request answers. */
  onDeadline(x: ChainContext): void {
    this.next?.onDeadline(x);
  }

  /** The exchange is over; each step releases what it holds after the steps below it did. */
  onEnd(x: ChainContext): void {
    this.next?.onEnd(x);
  }
}
