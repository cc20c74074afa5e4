import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { ClusterRoute } from '../config/types';
import { RETRY_DISCARDED_BODY_MAX_BYTES } from '../config/defaults';
import type { RouteInstruments } from '../admin/metrics';
import { ERROR_STATUS, SidecarError, type ErrorCode } from '../errors';
import { retryAfterFromRawHeaders, retryDelayMs, statusCarriesRetryAfter } from '../policy/backoff';
import type { BreakerOutcome, BreakerTicket } from '../policy/circuit-breaker';
import type { AdmissionWaiter, ConcurrencyLimit } from '../policy/concurrency-limit';
import { ReplayableBody } from '../policy/replay-body';
import {
  decideRetry,
  mayRetryStaleConnection,
  SKIPPED_RETRY_REASONS,
  STALE_CONNECTION_RETRY_REASON,
  statusMayRetry,
  type AttemptOutcome,
  type RetryReason,
} from '../policy/retry';
import { classifyUpstreamError, type AttemptFailure } from '../upstream/error-map';
import type { ClusterRuntime, EndpointRuntime } from '../upstream/cluster';
import { responseFlags } from '../telemetry/response-flags';
import { noopRequestTrace, type RequestTrace } from '../telemetry/tracing';
import { limitRequestBody } from './body-limit';
import { refuseLaterRequests } from './closing-connections';
import { downstreamResponseHeaders, setAttempt } from './headers';
import { abortResponse, isHttp1, responseCompleted } from './http2-request';
import { sendError } from './respond';
import type { ListenerIdentity, ProxyServices } from './state';

/**
 * The per-request state of one proxied exchange: short-lived, created when a request matches
 * a cluster route and dropped when the client's response closes.
 *
 * The data path is breaker → concurrency limit → retry loop. `start` takes one breaker ticket
 * for the whole request (settled with its final outcome, so a request a retry saved counts
 * as a success) and a slot of the cluster's limit. `dispatchAttempt` sends an attempt to the
 * endpoint the cluster picks; its outcome arrives in `onAttemptHeaders` (a response) or
 * `onAttemptFailed` (no response). Either asks the retry policy (policy/retry.ts) whether to
 * try again; a retry waits its backoff and dispatches again, preferring another endpoint.
 * A retriable response is recognised before anything is written to the client, and nothing
 * is retried once the client got a byte. Policies with nothing configured cost a branch:
 * no promise, closure or timer is created for them per request.
 */
export class ProxyExchange implements AdmissionWaiter {
  private attempt = 0;
  /** The attempt whose events may shape the response; undefined between attempts. */
  private handler: AttemptHandler | undefined;
  private endpoint: EndpointRuntime | undefined;
  private breakerTicket: BreakerTicket | undefined;
  private resumeUpstream: (() => void) | undefined;
  /** Armed while the client's socket is full; a client that reads nothing for the route timeout is cut. */
  private stallTimer: NodeJS.Timeout | undefined;
  private clientStalled = false;
  private listeningForDrain = false;
  /**
   * The request's one clock: it ends the current try at its per-try timeout when that comes
   * first, else the exchange at the route deadline. One timer serves both, so a route with
   * retries configured costs no timer more than one without while no retry happens.
   */
  private clock: NodeJS.Timeout | undefined;
  private clockIsPerTry = false;
  private deadlineAt = 0;
  /** The wait before the next attempt; the clock is stopped meanwhile (the wait ends before the deadline). */
  private backoffTimer: NodeJS.Timeout | undefined;
  /** Present when the request body may have to be sent again. */
  private body: ReplayableBody | undefined;
  private admitted = false;
  private responseStarted = false;
  private clientGone = false;
  /** Set once the exchange answered without the current attempt: a late attempt is aborted on connect. */
  private abandoned = false;
  private deadlineExpired = false;
  private finished = false;
  private status = 0;
  private errorCode: ErrorCode | undefined;
  private bytesIn = 0;
  private bytesOut = 0;
  private attemptStartedAt = 0;
  private upstreamMs: number | undefined;
  private retryReasonOfAttempt: RetryReason | undefined;
  /** The request had its one retry after the stale keep-alive race (not one of `retry.attempts`). */
  private staleConnectionRetried = false;
  private backoffBeforeAttemptMs = 0;
  /** The client's body behind the route's size limit, created on first use. */
  private limitedBody: Readable | undefined;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly listener: ListenerIdentity,
    private readonly route: ClusterRoute,
    private readonly cluster: ClusterRuntime,
    private readonly services: ProxyServices,
    private readonly requestId: string,
    private readonly path: string,
    private readonly upstreamHeaders: string[],
    private readonly hasBody: boolean,
    private readonly startedAt: number,
    private readonly trace: RequestTrace = noopRequestTrace(),
  ) {}

  private routeInstruments: RouteInstruments | undefined;
  /** The route's metric series (the route belongs to one listener and one cluster), looked up once. */
  private get instruments(): RouteInstruments {
    return (this.routeInstruments ??= this.services.metrics.forClusterRoute(this.listener.name, this.route));
  }

  /** The attempt in flight or last made: 1 for the first try. */
  get attemptNumber(): number {
    return this.attempt;
  }

  /** Why the current attempt is a retry (the failed attempt's kind or status); undefined for the first try. */
  get retryReason(): RetryReason | undefined {
    return this.retryReasonOfAttempt;
  }

  /** The backoff waited before the current attempt, ms; 0 for the first try. */
  get backoffMs(): number {
    return this.backoffBeforeAttemptMs;
  }

  start(): void {
    this.cluster.acquire();
    this.res.on('close', this.onClientClose);
    this.deadlineAt = performance.now() + this.route.timeoutMs;
    this.startClock();
    this.cluster.retryBudget.recordRequest();
    const ticket = this.cluster.breaker.admit();
    if (ticket === undefined) {
      this.refuse('CIRCUIT_OPEN', `the circuit breaker of cluster ${this.cluster.config.name} is ${this.cluster.breaker.state}`);
      return;
    }
    this.breakerTicket = ticket;
    if (this.hasBody && this.route.retry.attempts > 0) this.keepBodyForReplay();
    const admission = this.cluster.limit.enter(this);
    if (admission === 'admitted') {
      this.admitted = true;
      this.dispatchAttempt();
    } else if (admission === 'rejected') {
      this.refuse('OVERLOADED', `cluster ${this.cluster.config.name} has ${this.cluster.limit.active} requests in flight and ${this.cluster.limit.pending} waiting, its limits`);
    }
    // 'queued': admit() dispatches once a slot frees up.
  }

  /** A slot of the cluster's concurrency limit freed up for this queued request. */
  admit(): void {
    this.admitted = true;
    if (this.abandoned || this.finished) return;
    // The first try's per-try timeout counts from its dispatch, not from the wait for a slot.
    if (this.route.retry.perTryTimeoutMs !== undefined) this.restartClock();
    this.dispatchAttempt();
  }

  private dispatchAttempt(): void {
    // Reached from start, from admission after a wait for a slot and after a backoff: none of
    // them may send anything for a client that is gone or a request already answered.
    if (this.abandoned || this.finished) return;
    const endpoint = this.cluster.pick(this.endpoint);
    if (endpoint === undefined) {
      this.refuse('NO_HEALTHY_UPSTREAM', `no endpoint of cluster ${this.cluster.config.name} is healthy`);
      return;
    }
    this.endpoint = endpoint;
    this.attempt++;
    setAttempt(this.upstreamHeaders, this.attempt);
    this.trace.attemptStarted(
      this.attempt,
      endpoint.config.url,
      this.path,
      this.upstreamHeaders,
      this.attempt > 1 ? { reason: this.retryReasonOfAttempt, backoffMs: this.backoffBeforeAttemptMs } : undefined,
    );
    this.attemptStartedAt = performance.now();
    if (this.clock === undefined) this.startClock(); // a retry: the clock stopped for the backoff
    const handler = new AttemptHandler(this, endpoint, this.cluster.limit);
    this.handler = handler;
    const options: Dispatcher.DispatchOptions = {
      path: this.path,
      method: this.req.method as Dispatcher.HttpMethod,
      headers: this.upstreamHeaders,
      body: this.attemptBody(),
      // Once the response streams, the route timeout bounds the silence between two chunks.
      bodyTimeout: this.route.timeoutMs,
      headersTimeout: 0,
    };
    endpoint.pool.dispatch(options, handler);
  }

  // --- the request body ---

  /** The client's body as the exchange reads it: behind the route's `maxRequestBodyBytes`. */
  private requestBodySource(): Readable {
    return (this.limitedBody ??= limitRequestBody(this.req, this.route.maxRequestBodyBytes));
  }

  /**
   * Keeps the body for replay unless it announces more than `retry.maxBodyBytes`: such a
   * body streams through once and its request is not retried (counted as body_too_large).
   */
  private keepBodyForReplay(): void {
    const declared = this.req.headers['content-length'];
    const maxBodyBytes = this.route.retry.maxBodyBytes;
    if (declared !== undefined && Number(declared) > maxBodyBytes) return;
    this.body = new ReplayableBody(this.requestBodySource(), maxBodyBytes);
  }

  private attemptBody(): Readable | Buffer | null {
    if (!this.hasBody) return null;
    return this.body !== undefined ? this.body.forAttempt() : this.requestBodySource();
  }

  private bodyReplayable(): boolean {
    return !this.hasBody || (this.body !== undefined && this.body.replayable);
  }

  /** Whether events of this attempt may still shape the client's response. */
  isCurrent(handler: AttemptHandler): boolean {
    return handler === this.handler && !this.abandoned && !this.finished;
  }

  // --- upstream events (from AttemptHandler, only for the current attempt) ---

  onAttemptHeaders(handler: AttemptHandler, statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: undici consumes informational responses.
    this.trace.attemptResponded(statusCode);
    const endpoint = handler.endpoint;
    const failed = statusCode >= 500;
    if (failed) endpoint.responses5xx++;
    this.cluster.recordAttempt(endpoint, failed);
    // Headers arrived: neither the per-try timeout nor the deadline applies to this try any more.
    this.stopClock();
    this.instruments.attempted(statusClass(statusCode));
    const policy = this.route.retry;
    if (policy.attempts > 0 && statusMayRetry(policy, statusCode) && this.retry({ status: statusCode }, rawHeaders)) {
      // Nothing of this response reaches the client; its body is read and dropped.
      handler.discard();
      this.trace.attemptEnded();
      return true;
    }
    this.settleBreaker(failed ? 'failure' : 'success');
    this.upstreamMs = performance.now() - this.attemptStartedAt;
    this.responseStarted = true;
    this.status = statusCode;
    this.resumeUpstream = resume;
    const headers = downstreamResponseHeaders(rawHeaders, this.route.responseHeaders, this.requestId);
    try {
      // HTTP/2 has no reason phrase (node:http2 warns when one is given).
      if (statusText && isHttp1(this.req)) this.res.writeHead(statusCode, statusText, headers);
      else this.res.writeHead(statusCode, headers);
    } catch (error) {
      // A header value Node refuses to send (it would be a response-splitting vector).
      this.responseStarted = false;
      handler.abort?.(new SidecarError('UPSTREAM_PROTOCOL_ERROR', 'the upstream sent a header the sidecar cannot relay', { cause: error }));
      return false;
    }
    // Body bytes that came in the same read as the headers are written before this runs and
    // carry the headers with them; otherwise (an event stream waiting for its first event)
    // the client gets the headers now instead of with the first chunk.
    // (A tick, not a microtask: queueMicrotask makes an AsyncResource for every call.)
    process.nextTick(flushHeadersIfIdle, this);
    return true;
  }

  /** @internal the tick after the response headers (see onAttemptHeaders). */
  flushHeadersIfIdle(): void {
    // (headersSent turns true at writeHead, before anything is on the wire.)
    if (this.bytesOut === 0 && !this.res.writableEnded && !this.res.destroyed) this.res.flushHeaders();
  }

  onAttemptData(chunk: Buffer): boolean {
    this.bytesOut += chunk.length;
    const flushed = this.res.write(chunk);
    if (!flushed) {
      // Listened to from the first full write on: most responses never fill the socket.
      if (!this.listeningForDrain) {
        this.listeningForDrain = true;
        this.res.on('drain', () => this.onClientDrain());
      }
      // The upstream is paused until 'drain', and undici's body timeout does not run while paused.
      if (this.stallTimer === undefined) this.stallTimer = setTimeout(clientStalled, this.route.timeoutMs, this);
    }
    return flushed;
  }

  onAttemptBodySent(handler: AttemptHandler): void {
    // A retry sends the same body again: the access log counts the client's bytes once.
    if (handler.bodyBytesSent > this.bytesIn) this.bytesIn = handler.bodyBytesSent;
  }

  onAttemptComplete(): void {
    this.trace.attemptEnded();
    this.res.end();
  }

  onAttemptError(handler: AttemptHandler, error: Error): void {
    const failure = classifyUpstreamError(error);
    this.trace.attemptEnded(failure);
    if (this.responseStarted) {
      // Part of the response is already with the client: cutting the connection is the
      // only way to tell it the body is incomplete.
      this.errorCode = failure.code;
      abortResponse(this.res);
      return;
    }
    this.onAttemptFailed(handler, failure);
  }

  private onAttemptFailed(handler: AttemptHandler, failure: AttemptFailure): void {
    if (failure.reusedConnection === true && this.retryStaleConnection(handler, failure)) return;
    // The client's own body failing says nothing about the app.
    const appFailed = failure.kind !== 'request-body';
    if (appFailed) handler.endpoint.failures++;
    if (appFailed) this.cluster.recordAttempt(handler.endpoint, true);
    this.stopClock();
    this.instruments.attempted(failure.code);
    // The route timeout ends the exchange: there is no time left for another attempt.
    if (!this.deadlineExpired && this.route.retry.attempts > 0 && this.retry({ failure: failure.kind }, undefined)) return;
    this.settleBreaker(appFailed ? 'failure' : 'neutral');
    this.respondWithError(failure.code);
  }

  /**
   * The stale keep-alive race (policy/retry.ts, mayRetryStaleConnection): sent again at once,
   * without the route's retry policy. The app closing an idle connection is no failure of
   * the app, so neither the endpoint's failures nor outlier detection count it.
   */
  private retryStaleConnection(handler: AttemptHandler, failure: AttemptFailure): boolean {
    const retry = mayRetryStaleConnection({
      method: this.req.method ?? 'GET',
      alreadyRetried: this.staleConnectionRetried,
      reusedConnection: failure.reusedConnection === true,
      responseStarted: handler.responseStarted || this.responseStarted,
      bodyReplayable: this.bodyReplayable(),
      remainingMs: this.deadlineExpired ? 0 : this.deadlineAt - performance.now(),
    });
    if (!retry) return false;
    this.stopClock();
    this.instruments.attempted(failure.code);
    this.staleConnectionRetried = true;
    this.services.metrics.retriesTotal.labels(this.cluster.config.name, STALE_CONNECTION_RETRY_REASON).inc();
    this.handler = undefined;
    this.retryReasonOfAttempt = STALE_CONNECTION_RETRY_REASON;
    this.backoffBeforeAttemptMs = 0;
    // Dispatched from a timer, not from inside undici's error callback.
    this.backoffTimer = setTimeout(resumeAfterBackoff, 0, this);
    return true;
  }

  /** The per-try timeout of the current attempt expired before its response headers. */
  private onPerTryTimeout(): void {
    const handler = this.handler;
    if (handler === undefined || handler.done) {
      // No try in flight (still waiting for a slot): the clock goes on towards the deadline.
      this.startClock(false);
      return;
    }
    if (this.clientStillSending(handler)) {
      this.onClientTooSlow(`the client had not sent its whole request body within the per-try timeout (${this.route.retry.perTryTimeoutMs}ms)`);
      return;
    }
    const timeout = new SidecarError('UPSTREAM_TIMEOUT', `no response headers within the per-try timeout (${this.route.retry.perTryTimeoutMs}ms)`);
    if (handler.abort !== undefined) {
      handler.abort(timeout); // its error callback goes through onAttemptFailed
      return;
    }
    // Still waiting for a connection: leave it behind (it is aborted when it connects).
    this.handler = undefined;
    const failure = classifyUpstreamError(timeout);
    this.trace.attemptEnded(failure);
    this.onAttemptFailed(handler, failure);
  }

  /** The backoff before the next attempt is over. */
  onBackoffElapsed(): void {
    this.backoffTimer = undefined;
    if (this.abandoned || this.finished) return;
    this.dispatchAttempt();
  }

  /**
   * Asks the retry policy about this outcome of the current attempt and, if it says yes,
   * spends the budget, counts the retry and starts the backoff. False: the caller answers
   * with this outcome (skipped retries are counted here).
   */
  private retry(outcome: AttemptOutcome, rawHeaders: Buffer[] | undefined): boolean {
    const policy = this.route.retry;
    const retryAfterMs =
      rawHeaders !== undefined && outcome.status !== undefined && statusCarriesRetryAfter(outcome.status)
        ? retryAfterFromRawHeaders(rawHeaders, Date.now())
        : undefined;
    // The stale-connection retry is not one of the policy's attempts.
    const attempt = this.staleConnectionRetried ? this.attempt - 1 : this.attempt;
    const delayMs = retryDelayMs(attempt, policy.backoff, retryAfterMs);
    const decision = decideRetry({
      policy,
      attempt,
      outcome,
      method: this.req.method ?? 'GET',
      hasIdempotencyKey: this.req.headers['idempotency-key'] !== undefined,
      bodyReplayable: this.bodyReplayable(),
      responseStarted: this.responseStarted,
      remainingMs: this.deadlineAt - performance.now(),
      delayMs,
      budgetAvailable: this.cluster.retryBudget.canRetry(),
    });
    const metrics = this.services.metrics;
    const clusterName = this.cluster.config.name;
    if (decision.kind === 'no') {
      if (SKIPPED_RETRY_REASONS.has(decision.reason)) metrics.retriesSkippedTotal.labels(clusterName, decision.reason).inc();
      return false;
    }
    this.cluster.retryBudget.recordRetry();
    metrics.retriesTotal.labels(clusterName, decision.reason).inc();
    this.handler = undefined;
    this.retryReasonOfAttempt = decision.reason;
    this.backoffBeforeAttemptMs = delayMs;
    this.backoffTimer = setTimeout(resumeAfterBackoff, delayMs, this);
    return true;
  }

  // --- client side ---

  private onClientDrain(): void {
    this.clearStallTimer();
    const resume = this.resumeUpstream;
    if (resume !== undefined) resume();
  }

  private readonly onClientClose = (): void => {
    if (!responseCompleted(this.res)) {
      this.clientGone = true;
      this.abandon(new SidecarError('UPSTREAM_RESET', 'the client went away'), 'neutral');
    }
    this.finish();
  };

  /** @internal the client read nothing of the response for the route timeout. */
  onClientStalled(): void {
    this.stallTimer = undefined;
    this.clientStalled = true;
    abortResponse(this.res);
  }

  private clearStallTimer(): void {
    if (this.stallTimer !== undefined) {
      clearTimeout(this.stallTimer);
      this.stallTimer = undefined;
    }
  }

  /** @internal the per-try timeout or the deadline, whichever the clock was armed for, is up. */
  onClock(): void {
    this.clock = undefined;
    if (this.responseStarted || this.finished) return;
    if (this.clockIsPerTry) {
      this.onPerTryTimeout();
      return;
    }
    this.deadlineExpired = true;
    if (!this.admitted) {
      this.cluster.limit.cancel(this);
      this.abandoned = true;
      this.refuse('OVERLOADED', `no slot of cluster ${this.cluster.config.name} freed up within the route timeout (${this.route.timeoutMs}ms)`);
      return;
    }
    const handler = this.handler;
    if (handler !== undefined && this.clientStillSending(handler)) {
      this.onClientTooSlow(`the client had not sent its whole request body within the route timeout (${this.route.timeoutMs}ms)`);
      return;
    }
    const timeout = new SidecarError('UPSTREAM_TIMEOUT');
    if (handler !== undefined && handler.abort !== undefined && !handler.done) {
      // The attempt's error callback answers 504 (and no policy retries past the deadline).
      handler.abort(timeout);
    } else {
      // Queued for a connection, or waiting out a backoff: answer now; a queued attempt is
      // aborted when it connects.
      this.abandon(timeout, 'failure');
      this.respondWithError('UPSTREAM_TIMEOUT');
    }
  }

  /**
   * Whether a timeout of this attempt is the client's doing: the attempt is sending the body
   * (it has its connection), the client has not sent all of it, and nothing it sent is left
   * unread (had the app stopped reading, the body would pile up in the request's buffer).
   */
  private clientStillSending(handler: AttemptHandler): boolean {
    const req = this.req;
    return this.hasBody && handler.abort !== undefined && !handler.done && !req.complete && req.readableLength === 0;
  }

  /**
   * A timeout came while the client was still sending its body (a stalled or trickling upload):
   * 408, the attempt cancelled, and nothing counted against the app: no breaker failure, no
   * outlier failure, no retry (so no retry budget). The HTTP/1 connection is closed after
   * the answer, its body unread.
   */
  private onClientTooSlow(message: string): void {
    this.instruments.attempted('REQUEST_TIMEOUT');
    this.trace.attemptEnded(classifyUpstreamError(new SidecarError('REQUEST_TIMEOUT', message)));
    // The attempt's events stop reaching the exchange: it counts nothing against the endpoint
    // and asks for no retry. It is cancelled in finish(), once the 408 is out.
    this.abandoned = true;
    refuseLaterRequests(this.req);
    this.respondWithError('REQUEST_TIMEOUT', message);
  }

  /** Stops caring about the current attempt; it is aborted now or as soon as it connects. */
  private abandon(reason: Error, outcome: BreakerOutcome): void {
    this.abandoned = true;
    this.clearBackoff();
    this.settleBreaker(outcome);
    const handler = this.handler;
    if (handler !== undefined && handler.abort !== undefined && !handler.done) handler.abort(reason);
  }

  private settleBreaker(outcome: BreakerOutcome): void {
    const ticket = this.breakerTicket;
    if (ticket !== undefined) {
      this.breakerTicket = undefined;
      ticket.settle(outcome);
    }
  }

  /** Arms the clock for what comes first: the per-try timeout of the next try, or the deadline. */
  private startClock(forTry = true): void {
    const remainingMs = Math.max(0, this.deadlineAt - performance.now());
    const perTryTimeoutMs = this.route.retry.perTryTimeoutMs;
    this.clockIsPerTry = forTry && perTryTimeoutMs !== undefined && perTryTimeoutMs < remainingMs;
    this.clock = setTimeout(clockExpired, this.clockIsPerTry ? perTryTimeoutMs : remainingMs, this);
  }

  private restartClock(): void {
    this.stopClock();
    this.startClock();
  }

  private stopClock(): void {
    if (this.clock !== undefined) {
      clearTimeout(this.clock);
      this.clock = undefined;
    }
  }

  private clearBackoff(): void {
    if (this.backoffTimer !== undefined) {
      clearTimeout(this.backoffTimer);
      this.backoffTimer = undefined;
    }
  }

  /** Answers without reaching the app (any more): the cluster refused the request. */
  private refuse(code: ErrorCode, message: string): void {
    // Refused before any attempt, the request says nothing about the app; refused for a
    // retry, it ends a request the app failed.
    this.settleBreaker(this.attempt > 0 ? 'failure' : 'neutral');
    this.services.metrics.circuitRejections.labels(this.cluster.config.name, code.toLowerCase()).inc();
    this.respondWithError(code, message);
  }

  private respondWithError(code: ErrorCode, message?: string): void {
    this.stopClock();
    this.clearBackoff();
    this.settleBreaker('neutral');
    this.errorCode = code;
    this.status = this.res.headersSent ? this.status : ERROR_STATUS[code];
    this.bytesOut += sendError(this.res, code, this.requestId, message, { close: this.hasBody && !this.req.readableEnded });
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    // An attempt still running once the response is over (a 408 answered while the client's
    // body was still due) is cancelled now, not before: undici's abort destroys the body it
    // reads, the client's request, and with it the client's connection and the answer.
    const handler = this.handler;
    if (handler !== undefined && handler.abort !== undefined && !handler.done) handler.abort(EXCHANGE_ENDED);
    this.stopClock();
    this.clearStallTimer();
    this.clearBackoff();
    this.settleBreaker('neutral');
    if (this.admitted) this.cluster.limit.leave();
    else this.cluster.limit.cancel(this);
    this.body?.dispose();
    this.cluster.release();
    const durationMs = performance.now() - this.startedAt;
    const status = this.clientGone && !this.responseStarted ? 499 : this.status;
    const accessLog = this.services.accessLog;
    const clusterName = this.cluster.config.name;
    const flags = responseFlags({ errorCode: this.errorCode, status, attempts: this.attempt, clientGone: this.clientGone, clientStalled: this.clientStalled });
    this.trace.end({ status, route: this.route.name, cluster: clusterName, errorCode: this.errorCode, flags });
    const instruments = this.instruments;
    instruments.answered(status, durationMs / 1000);
    if (this.upstreamMs !== undefined) instruments.upstreamResponded(this.upstreamMs / 1000);
    // A line nobody reads is not built (an error line still is: recent errors keep it).
    if (accessLog.enabled === false && this.errorCode === undefined) return;
    accessLog.write({
      method: this.req.method ?? '',
      path: this.req.url ?? '',
      listener: this.listener.name,
      route: this.route.name,
      cluster: clusterName,
      status,
      duration_ms: round3(durationMs),
      upstream_ms: this.upstreamMs === undefined ? undefined : round3(this.upstreamMs),
      bytes_in: this.bytesIn,
      bytes_out: this.bytesOut,
      request_id: this.requestId,
      attempts: this.attempt,
      error: this.errorCode,
      flags,
      upstream: this.endpoint?.config.url,
      trace_id: this.trace.traceId,
      span_id: this.trace.spanId,
    });
  }
}

// Timers and the tick take the exchange as an argument: no closure is allocated per request.
function resumeAfterBackoff(exchange: ProxyExchange): void {
  exchange.onBackoffElapsed();
}

function clockExpired(exchange: ProxyExchange): void {
  exchange.onClock();
}

function clientStalled(exchange: ProxyExchange): void {
  exchange.onClientStalled();
}

function flushHeadersIfIdle(exchange: ProxyExchange): void {
  exchange.flushHeadersIfIdle();
}

const DISCARD_LIMIT = new SidecarError('UPSTREAM_RESET', 'the response replaced by a retry was too long to read to its end');
const EXCHANGE_ENDED = new SidecarError('UPSTREAM_RESET', 'the response ended before the attempt');
const ABANDONED_BEFORE_SENT = new SidecarError('UPSTREAM_RESET', 'the attempt was abandoned before it was sent');

/**
 * undici's handler for one attempt. It forwards to the exchange only while its attempt is the
 * current one, so a late event of an abandoned attempt can never touch the client's response.
 *
 * It implements undici's classic handler callbacks (onHeaders/onData/...) rather than the
 * controller-based ones: undici 7 calls the classic ones directly with the raw header buffers,
 * while the newer API would parse every response's headers into an object first.
 */
class AttemptHandler implements Dispatcher.DispatchHandler {
  /** undici's abort for this attempt, from the moment it has a connection. */
  abort: ((reason: Error) => void) | undefined;
  /** The attempt completed or failed: nothing left to abort. */
  done = false;
  bodyBytesSent = 0;
  /** The first byte of the response arrived (undici's onResponseStarted, before the headers are complete). */
  responseStarted = false;
  /** A retry replaced this attempt after its headers: its body is read to the end and dropped. */
  private discarding = false;
  private discardedBytes = 0;

  /** Counted in the cluster's pending requests until it has a connection (or failed without one). */
  private waitingForConnection = true;

  constructor(
    private readonly exchange: ProxyExchange,
    readonly endpoint: EndpointRuntime,
    private readonly limit: ConcurrencyLimit,
  ) {
    endpoint.inFlight++;
    endpoint.requests++;
    limit.attemptQueued();
  }

  /** Drops the rest of this response; a short one is read to its end so its connection is reused. */
  discard(): void {
    this.discarding = true;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.leaveConnectionQueue();
    if (!this.exchange.isCurrent(this)) {
      // Abandoned while it waited for a connection (its client left, or the exchange answered
      // without it). undici's abort() would destroy the connection it was just given, so that
      // every abandoned attempt in the queue cost a new connection to the app. Throwing here
      // instead makes undici fail the request before writing anything, keep the connection
      // and go on with the next request in its queue (client-h1 writeH1; onError follows).
      throw ABANDONED_BEFORE_SENT;
    }
    this.abort = abort;
  }

  onResponseStarted(): void {
    this.responseStarted = true;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (!this.exchange.isCurrent(this)) return false;
    return this.exchange.onAttemptHeaders(this, statusCode, rawHeaders, resume, statusText);
  }

  onData(chunk: Buffer): boolean {
    if (this.discarding) {
      this.discardedBytes += chunk.length;
      if (this.discardedBytes > RETRY_DISCARDED_BODY_MAX_BYTES) this.abort?.(DISCARD_LIMIT);
      return true;
    }
    if (!this.exchange.isCurrent(this)) return false;
    return this.exchange.onAttemptData(chunk);
  }

  /**
   * undici 7 passes the chunk itself, although its typings say a size: adding it to a number
   * would build a string of the whole body.
   */
  onBodySent(chunk: number | Buffer | string): void {
    this.bodyBytesSent += typeof chunk === 'number' ? chunk : Buffer.byteLength(chunk);
    if (this.exchange.isCurrent(this)) this.exchange.onAttemptBodySent(this);
  }

  onComplete(): void {
    this.end();
    if (this.exchange.isCurrent(this)) this.exchange.onAttemptComplete();
  }

  onError(error: Error): void {
    this.end();
    if (this.exchange.isCurrent(this)) this.exchange.onAttemptError(this, error);
  }

  private end(): void {
    if (this.done) return;
    this.done = true;
    this.endpoint.inFlight--;
    this.leaveConnectionQueue();
  }

  private leaveConnectionQueue(): void {
    if (!this.waitingForConnection) return;
    this.waitingForConnection = false;
    this.limit.connectionReached();
  }
}

function statusClass(status: number): string {
  return status >= 500 ? '5xx' : status >= 400 ? '4xx' : status >= 300 ? '3xx' : '2xx';
}

function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
