import type { RetryPolicy } from '../config/types';
import type { AttemptFailureKind } from '../core/errors';
import type { GrpcRetryOn } from '../core/grpc';

/**
 * The retry decision, and only the decision: given what one attempt came back with and the
 * facts of the request, would another attempt be made? It spends nothing, counts nothing and
 * sets no timer (the exchange does that with the outcome), so it can be tested on its own and
 * read as the one statement of the retry rules.
 */

/** What an attempt came back with: a response status, or a failure before any response. */
export type AttemptOutcome =
  | { readonly status: number; readonly failure?: undefined; readonly grpc?: undefined }
  | { readonly failure: AttemptFailureKind; readonly status?: undefined; readonly grpc?: undefined }
  /** A gRPC call answered trailers-only with a status that has a `retry.on` name. */
  | { readonly grpc: GrpcRetryOn; readonly status?: undefined; readonly failure?: undefined };

export interface RetryInput {
  readonly policy: RetryPolicy;
  /** Tries made so far, the failed one included: 1 after the first try. */
  readonly attempt: number;
  readonly outcome: AttemptOutcome;
  /** Upper-case request method. */
  readonly method: string;
  readonly hasIdempotencyKey: boolean;
  /** The request has no body, or its body was kept whole for replay. */
  readonly bodyReplayable: boolean;
  /** Part of the response already went to the client. */
  readonly responseStarted: boolean;
  /** Time left before the route timeout, ms. */
  readonly remainingMs: number;
  /** The wait before the retry would be sent (backoff or Retry-After), ms. */
  readonly delayMs: number;
  /** The cluster's retry budget has room for one more retry. */
  readonly budgetAvailable: boolean;
}

/**
 * Why a retry is made, as the `reason` label of sidecar_retries_total: the failure kind, or
 * the response status that matched a retry condition (bounded: 5xx, 409 and configured codes).
 */
export type RetryReason = AttemptFailureKind | GrpcRetryOn | `${number}` | typeof STALE_CONNECTION_RETRY_REASON;

/** The reason of the one retry made by default after the stale keep-alive race. */
export const STALE_CONNECTION_RETRY_REASON = 'stale-connection';

/**
 * Why no retry is made. The first four are "a retry the policy asked for but did not get" and
 * are counted in sidecar_retries_skipped_total; the others are the policy saying no.
 */
export type NoRetryReason =
  | 'method'
  | 'body_too_large'
  | 'deadline'
  | 'budget'
  | 'not-retriable'
  | 'attempts-exhausted'
  | 'response-started';

export type RetryDecision =
  | { readonly kind: 'retry'; readonly reason: RetryReason }
  | { readonly kind: 'no'; readonly reason: NoRetryReason };

/** The no-retry reasons counted as skipped retries. */
export const SKIPPED_RETRY_REASONS: ReadonlySet<NoRetryReason> = new Set(['method', 'body_too_large', 'deadline', 'budget']);

const RETRIABLE_4XX = 409;

/**
 * The checks run in a fixed order, so the reason names the first rule that said no: is the
 * outcome one the route retries at all, can it still be retried (response, attempts), may this
 * request be sent again (method, body), and is there time and budget for it.
 */
export function decideRetry(input: RetryInput): RetryDecision {
  const { policy, outcome } = input;
  if (!matchesRetryOn(policy, outcome)) return no('not-retriable');
  if (input.responseStarted) return no('response-started');
  if (input.attempt > policy.attempts) return no('attempts-exhausted');
  if (!methodMayRepeat(input)) return no('method');
  if (!input.bodyReplayable) return no('body_too_large');
  if (input.delayMs >= input.remainingMs) return no('deadline');
  if (!input.budgetAvailable) return no('budget');
  return { kind: 'retry', reason: outcome.failure ?? outcome.grpc ?? (String(outcome.status) as `${number}`) };
}

/**
 * Whether the route's `on` conditions cover this outcome. Failures follow Envoy: `5xx` and
 * `gateway-error` cover every failure that would have been answered with a 5xx (connect
 * failure, reset, per-try timeout, malformed response); `reset` covers a connection that
 * gave no response (refused, reset or silent); `connect-failure` only the refused connection.
 * A failure of the client's own request body is never retried.
 */
export function matchesRetryOn(policy: RetryPolicy, outcome: AttemptOutcome): boolean {
  const on = policy.on;
  if (outcome.grpc !== undefined) return on.has(outcome.grpc);
  if (outcome.failure !== undefined) {
    switch (outcome.failure) {
      case 'connect-failure':
      // A failed handshake: the request was not sent. The retry goes to another endpoint only
      // (pipeline/retry.ts); the same certificate would fail the same way.
      case 'tls-failure':
        return on.has('connect-failure') || on.has('reset') || on.has('5xx') || on.has('gateway-error');
      case 'reset':
      case 'timeout':
        return on.has('reset') || on.has('5xx') || on.has('gateway-error');
      case 'protocol-error':
        return on.has('5xx') || on.has('gateway-error');
      case 'request-body':
        return false;
    }
  }
  return statusMayRetry(policy, outcome.status);
}

/**
 * Whether a response with this status is covered by `on`. It is also the cheap test the
 * exchange runs on every response of a route with retries, before anything else is computed.
 */
export function statusMayRetry(policy: RetryPolicy, status: number): boolean {
  const on = policy.on;
  if (status >= 500 && status <= 599 && on.has('5xx')) return true;
  if ((status === 502 || status === 503 || status === 504) && on.has('gateway-error')) return true;
  if (status === RETRIABLE_4XX && on.has('retriable-4xx')) return true;
  return on.has('retriable-status-codes') && policy.statusCodes.has(status);
}

/**
 * Only the route's methods are sent twice, or any method carrying an Idempotency-Key when the
 * route allows it: a POST that reached the app may have had its effect before the failure.
 * A connect failure is the exception: the request never left the sidecar, so sending it
 * again cannot repeat an effect.
 */
function methodMayRepeat(input: RetryInput): boolean {
  if (input.policy.methods.has(input.method)) return true;
  // Every gRPC call is a POST; naming a gRPC status in `on` is the route's say-so, as in
  // Envoy's retry_on for gRPC and gRPC's own retry policy.
  if (input.outcome.grpc !== undefined) return true;
  if (input.policy.idempotencyKey && input.hasIdempotencyKey) return true;
  return input.outcome.failure === 'connect-failure';
}

/** RFC 9110 §9.2.2: methods whose repetition has the effect of one request. */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export interface StaleConnectionInput {
  /** Upper-case request method. */
  readonly method: string;
  /** The request already had its stale-connection retry. */
  readonly alreadyRetried: boolean;
  /** The failed connection had carried an earlier response (it was reused from the pool). */
  readonly reusedConnection: boolean;
  /**
   * The app said it did not process the request (an HTTP/2 stream above its GOAWAY's last
   * stream id, or refused with REFUSED_STREAM); undefined is false.
   */
  readonly unprocessed?: boolean;
  /** A byte of the failed attempt's own response arrived. */
  readonly responseStarted: boolean;
  readonly bodyReplayable: boolean;
  /** Time left before the route timeout, ms. */
  readonly remainingMs: number;
}

/**
 * The stale keep-alive race: the app closed an idle connection just as the sidecar reused
 * it, so the request was reset before any byte of its response. Like Envoy and Linkerd,
 * this is retried once by default, whatever the route's retry policy (even with no retries
 * configured): the app closed the connection before it read the request, so sending it again
 * on a fresh connection cannot repeat an effect. Only idempotent methods qualify, because a
 * reset after the write cannot prove the app did not read the request, and only when the
 * body can be sent again. The exchange does not count it against `retry.attempts`, nor
 * spend the retry budget (the budget bounds the extra load retries put on a failing app; this
 * one is at most one per request and answers the sidecar's own reuse of a connection the app
 * had already given up), but it respects the route deadline.
 *
 * Over HTTP/2 the app can say so itself: a stream above the last stream id of its GOAWAY (a
 * graceful close), or one refused with REFUSED_STREAM, was not processed (RFC 9113 §8.7), so
 * it is sent again the same way whatever its method, when its body can be sent again.
 */
export function mayRetryStaleConnection(input: StaleConnectionInput): boolean {
  const unprocessed = input.unprocessed === true;
  return (
    (unprocessed || input.reusedConnection) &&
    !input.alreadyRetried &&
    !input.responseStarted &&
    input.remainingMs > 0 &&
    input.bodyReplayable &&
    (unprocessed || IDEMPOTENT_METHODS.has(input.method))
  );
}

function no(reason: NoRetryReason): RetryDecision {
  return { kind: 'no', reason };
}
