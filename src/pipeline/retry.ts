import type { RetryPolicy } from '../config/types';
import { retryAfterFromRawHeaders, retryDelayMs, statusCarriesRetryAfter } from '../policy/backoff';
import { ReplayableBody } from '../policy/replay-body';
import { decideRetry, SKIPPED_RETRY_REASONS, statusMayRetry, type AttemptOutcome } from '../policy/retry';
import { classifyUpstreamError, type AttemptFailure } from '../upstream/error-map';
import { SidecarError } from '../core/errors';
import type { AttemptControl, ChainContext } from './context';
import { GRPC_RETRY_ON_NAMES, grpcRetryOnName, grpcStatusInRawHeaders } from '../core/grpc';
import { Interceptor } from './interceptor';

const DEADLINE_IN_BACKOFF = classifyUpstreamError(new SidecarError('UPSTREAM_TIMEOUT'));

/**
 * The route's retry policy (only in the chain of a route with `retry.attempts` > 0). It keeps
 * the request body for replay, asks the pure decision (policy/retry.ts decideRetry) about each
 * answer of an attempt and, on yes, spends the cluster's retry budget, counts the retry, waits
 * the backoff (or Retry-After) and dispatches below again. A retried response is never relayed:
 * its body is read and dropped. Nothing is retried once the client got a byte.
 */
export class RetryInterceptor extends Interceptor {
  /** Whether `on` names a gRPC status: only then are gRPC answers' headers read. */
  private readonly retriesGrpc: boolean;

  constructor(private readonly policy: RetryPolicy) {
    super();
    this.retriesGrpc = GRPC_RETRY_ON_NAMES.some((name) => policy.on.has(name));
  }

  dispatch(x: ChainContext): void {
    if (x.hasBody) keepBodyForReplay(x, this.policy.maxBodyBytes);
    this.next!.dispatch(x);
  }

  override onResponse(x: ChainContext, handler: AttemptControl, statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    const grpc = x.grpc && this.retriesGrpc ? grpcRetryOutcome(rawHeaders) : undefined;
    if (grpc !== undefined ? this.retry(x, grpc, undefined) : statusMayRetry(this.policy, statusCode) && this.retry(x, { status: statusCode }, rawHeaders)) {
      // Nothing of this response reaches the client; its body is read and dropped.
      handler.discard();
      x.trace.attemptEnded();
      return true;
    }
    return this.up!.onResponse(x, handler, statusCode, rawHeaders, resume, statusText);
  }

  override onFailure(x: ChainContext, failure: AttemptFailure): void {
    // The route timeout ends the exchange: there is no time left for another attempt.
    // A TLS failure is never retried to the same endpoint: its certificate would fail again.
    const sameEndpointOnly = failure.kind === 'tls-failure' && (x.endpoint === undefined || !x.cluster.hasAlternativeTo(x.endpoint));
    if (x.responseStarted || x.deadlineExpired || sameEndpointOnly || !this.retry(x, { failure: failure.kind }, undefined)) this.up!.onFailure(x, failure);
  }

  /**
   * Asks the retry policy about this outcome of the current attempt and, if it says yes,
   * spends the budget, counts the retry and starts the backoff. False: the outcome goes up
   * (skipped retries are counted here).
   */
  private retry(x: ChainContext, outcome: AttemptOutcome, rawHeaders: Buffer[] | undefined): boolean {
    const policy = this.policy;
    const retryAfterMs =
      rawHeaders !== undefined && outcome.status !== undefined && statusCarriesRetryAfter(outcome.status)
        ? retryAfterFromRawHeaders(rawHeaders, Date.now())
        : undefined;
    // The stale-connection retry is not one of the policy's attempts.
    const attempt = x.staleConnectionRetried ? x.attempt - 1 : x.attempt;
    const delayMs = retryDelayMs(attempt, policy.backoff, retryAfterMs);
    const cluster = x.cluster;
    const decision = decideRetry({
      policy,
      attempt,
      outcome,
      method: x.req.method ?? 'GET',
      hasIdempotencyKey: x.req.headers['idempotency-key'] !== undefined,
      bodyReplayable: x.bodyReplayable(),
      responseStarted: x.responseStarted,
      remainingMs: x.deadlineAt - performance.now(),
      delayMs,
      budgetAvailable: cluster.retryBudget.canRetry(),
    });
    const metrics = x.services.metrics;
    if (decision.kind === 'no') {
      x.retryDeclined = decision.reason;
      if (SKIPPED_RETRY_REASONS.has(decision.reason)) metrics.retriesSkippedTotal.labels(cluster.config.name, decision.reason).inc();
      return false;
    }
    cluster.retryBudget.recordRetry();
    metrics.retriesTotal.labels(cluster.config.name, decision.reason).inc();
    x.handler = undefined;
    x.retryReason = decision.reason;
    x.backoffMs = delayMs;
    x.backoffTimer = setTimeout(resumeAfterBackoff, delayMs, x);
    return true;
  }

  /** @internal the backoff before the next attempt is over. */
  onBackoffElapsed(x: ChainContext): void {
    x.backoffTimer = undefined;
    if (x.abandoned || x.finished) return;
    this.next!.dispatch(x);
  }

  override onDeadline(x: ChainContext): void {
    if (x.backoffTimer === undefined) {
      this.next!.onDeadline(x);
      return;
    }
    // Waiting out a backoff: answer now.
    clearBackoff(x);
    x.abandoned = true;
    this.up!.onFailure(x, DEADLINE_IN_BACKOFF);
  }

  override onEnd(x: ChainContext): void {
    this.next!.onEnd(x);
    clearBackoff(x);
    x.body?.dispose();
  }
}

/**
 * Keeps the body for replay unless it announces more than `retry.maxBodyBytes`: such a
 * body streams through once and its request is not retried (counted as body_too_large).
 */
function keepBodyForReplay(x: ChainContext, maxBodyBytes: number): void {
  const declared = x.req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBodyBytes) return;
  x.body = new ReplayableBody(x.requestBodySource(), maxBodyBytes);
}

/**
 * A gRPC answer that may be retried: trailers-only (its grpc-status is in the headers, so no
 * message of the response exists yet) with a status that has a `retry.on` name.
 */
function grpcRetryOutcome(rawHeaders: Buffer[]): AttemptOutcome | undefined {
  const status = grpcStatusInRawHeaders(rawHeaders);
  const name = status === undefined ? undefined : grpcRetryOnName(status);
  return name === undefined ? undefined : { grpc: name };
}

function clearBackoff(x: ChainContext): void {
  if (x.backoffTimer !== undefined) {
    clearTimeout(x.backoffTimer);
    x.backoffTimer = undefined;
  }
}

// Timers take the exchange as an argument: no closure is allocated per request.
function resumeAfterBackoff(x: ChainContext): void {
  x.chain.retry?.onBackoffElapsed(x);
}
