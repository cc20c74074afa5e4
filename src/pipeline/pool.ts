import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { UpstreamDispatchOptions } from '../upstream/http2-stream';
import { SidecarError } from '../core/errors';
import { mayRetryStaleConnection, STALE_CONNECTION_RETRY_REASON } from '../policy/retry';
import { classifyUpstreamError, type AttemptFailure } from '../upstream/error-map';
import { refuseLaterRequests } from '../proxy/closing-connections';
import { setAttempt } from '../core/header-list';
import { setGrpcTimeout } from '../proxy/headers';
import { formatGrpcTimeout } from '../core/grpc';
import { MultiplexedBody } from '../proxy/multiplexed-body';
import { AttemptHandler } from './attempt';
import type { Exchange } from './exchange';
import { Interceptor } from './interceptor';
import { requestKeyValue } from './request-key';

const EXCHANGE_ENDED = new SidecarError('UPSTREAM_RESET', 'the response ended before the attempt');
const CLIENT_GONE = new SidecarError('UPSTREAM_RESET', 'the client went away');

/**
 * The terminal of an HTTP route: sends each attempt to the endpoint the cluster picks, through
 * the endpoint's undici pool, and reports what comes back up the chain. It owns the attempts
 * (numbering, `x-sidecar-attempt`, their spans, the endpoint's counts and the cluster's outlier
 * record) and the one retry every route has: the stale keep-alive race, sent again at once.
 */
export class PoolTerminal extends Interceptor {
  dispatch(x: Exchange): void {
    // Reached from the chain's start, from admission after a wait for a slot and after a
    // backoff: none of them may send anything for a client that is gone or a request already answered.
    if (x.abandoned || x.finished) return;
    const cluster = x.cluster;
    const hashOn = cluster.config.hashOn;
    const endpoint = cluster.pick(x.endpoint, hashOn === undefined ? undefined : requestKeyValue(x, hashOn));
    if (endpoint === undefined) {
      this.up!.onRefused(x, 'NO_HEALTHY_UPSTREAM', `no endpoint of cluster ${cluster.config.name} is healthy`);
      return;
    }
    x.endpoint = endpoint;
    const attempt = ++x.attempt;
    setAttempt(x.upstreamHeaders, attempt);
    // The app gets the time this attempt has left, the client's grpc-timeout and the route timeout both counted.
    if (x.grpc) setGrpcTimeout(x.upstreamHeaders, formatGrpcTimeout(Math.min(x.remainingMs(), x.route.retry.perTryTimeoutMs ?? Infinity)));
    x.trace.attemptStarted(attempt, endpoint.config.url, x.upstreamPath, x.upstreamHeaders, attempt > 1 ? { reason: x.retryReason, backoffMs: x.backoffMs } : undefined);
    x.attemptStartedAt = performance.now();
    this.up!.onAttemptStart(x);
    const http2 = cluster.config.protocol === 'http2';
    const body = http2 ? multiplexedBody(x) : attemptBody(x);
    const handler = new AttemptHandler(x, endpoint, cluster.limit, body instanceof MultiplexedBody ? body : undefined);
    x.handler = handler;
    const options: UpstreamDispatchOptions = {
      path: x.upstreamPath,
      method: x.req.method as Dispatcher.HttpMethod,
      headers: x.upstreamHeaders,
      // The HTTP/2 client (upstream/http2-pool.ts) reads a MultiplexedBody; the typings list fewer body forms.
      body: body as Dispatcher.DispatchOptions['body'],
      // Once the response streams, the route timeout bounds the silence between two chunks.
      bodyTimeout: x.route.timeoutMs,
      headersTimeout: 0,
      // HTTP/2: the client's trailers follow the body to the app (read once it has ended).
      ...(http2 && x.hasBody ? { requestTrailers: () => x.req.trailers } : {}),
    };
    endpoint.pool.dispatch(options, handler);
  }

  /** From the current attempt's handler. */
  onAttemptHeaders(x: Exchange, handler: AttemptHandler, statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: undici consumes informational responses.
    x.trace.attemptResponded(statusCode);
    const endpoint = handler.endpoint;
    const failed = statusCode >= 500;
    if (failed) endpoint.responses5xx++;
    x.cluster.recordAttempt(endpoint, failed);
    this.up!.onAttemptEnd(x);
    x.instruments.attempted(statusClass(statusCode));
    return this.up!.onResponse(x, handler, statusCode, rawHeaders, resume, statusText);
  }

  /** From the current attempt's handler. */
  onAttemptError(x: Exchange, handler: AttemptHandler, error: Error): void {
    const failure = classifyUpstreamError(error);
    x.trace.attemptEnded(failure);
    if (x.responseStarted) {
      // Part of the response is already with the client: observe cuts it.
      this.up!.onFailure(x, failure);
      return;
    }
    this.attemptFailed(x, handler, failure);
  }

  private attemptFailed(x: Exchange, handler: AttemptHandler, failure: AttemptFailure): void {
    if ((failure.reusedConnection === true || failure.unprocessed === true) && this.retryStaleConnection(x, handler, failure)) return;
    // The client's own body failing says nothing about the app.
    if (failure.kind === 'tls-failure') {
      x.services.logger.warn(
        { cluster: x.cluster.config.name, endpoint: handler.endpoint.name, reason: failure.message },
        'TLS handshake with the upstream failed',
      );
    }
    if (failure.kind !== 'request-body') {
      handler.endpoint.failures++;
      x.cluster.recordAttempt(handler.endpoint, true);
    }
    this.up!.onAttemptEnd(x);
    x.instruments.attempted(failure.code);
    this.up!.onFailure(x, failure);
  }

  /**
   * The stale keep-alive race (policy/retry.ts, mayRetryStaleConnection): sent again at once,
   * on every route, without the route's retry policy. The app closing an idle connection is no
   * failure of the app, so neither the endpoint's failures nor outlier detection count it.
   * The same for an HTTP/2 stream the app did not process (GOAWAY, REFUSED_STREAM).
   */
  private retryStaleConnection(x: Exchange, handler: AttemptHandler, failure: AttemptFailure): boolean {
    const retry = mayRetryStaleConnection({
      method: x.req.method ?? 'GET',
      alreadyRetried: x.staleConnectionRetried,
      reusedConnection: failure.reusedConnection === true,
      unprocessed: failure.unprocessed === true,
      responseStarted: handler.responseStarted || x.responseStarted,
      bodyReplayable: x.bodyReplayable(),
      remainingMs: x.remainingMs(),
    });
    if (!retry) return false;
    this.up!.onAttemptEnd(x);
    x.instruments.attempted(failure.code);
    x.staleConnectionRetried = true;
    x.services.metrics.retriesTotal.labels(x.cluster.config.name, STALE_CONNECTION_RETRY_REASON).inc();
    x.handler = undefined;
    x.retryReason = STALE_CONNECTION_RETRY_REASON;
    x.backoffMs = 0;
    // Dispatched from a timer, not from inside undici's error callback.
    x.redispatchTimer = setTimeout(redispatch, 0, x);
    return true;
  }

  /** @internal the wait before the stale-connection retry is over. */
  redispatch(x: Exchange): void {
    x.redispatchTimer = undefined;
    this.dispatch(x);
  }

  override onPerTryTimeout(x: Exchange): boolean {
    const handler = x.handler;
    // No try in flight (waiting for a slot, or before the stale-connection retry).
    if (handler === undefined || handler.done) return false;
    const perTryTimeoutMs = x.route.retry.perTryTimeoutMs;
    if (clientStillSending(x, handler)) {
      this.clientTooSlow(x, `the client had not sent its whole request body within the per-try timeout (${perTryTimeoutMs}ms)`);
      return true;
    }
    const timeout = new SidecarError('UPSTREAM_TIMEOUT', `no response headers within the per-try timeout (${perTryTimeoutMs}ms)`);
    if (handler.abort !== undefined) {
      handler.abort(timeout); // its error callback goes through attemptFailed
      return true;
    }
    // Still waiting for a connection: leave it behind (it is aborted when it connects).
    x.handler = undefined;
    const failure = classifyUpstreamError(timeout);
    x.trace.attemptEnded(failure);
    this.attemptFailed(x, handler, failure);
    return true;
  }

  override onDeadline(x: Exchange): void {
    const handler = x.handler;
    if (handler !== undefined && clientStillSending(x, handler)) {
      this.clientTooSlow(x, `the client had not sent its whole request body within the route timeout (${x.route.timeoutMs}ms)`);
      return;
    }
    const timeout = new SidecarError('UPSTREAM_TIMEOUT');
    if (handler !== undefined && handler.abort !== undefined && !handler.done) {
      // The attempt's error callback answers 504 (and no policy retries past the deadline).
      handler.abort(timeout);
      return;
    }
    // Queued for a connection or about to be sent again: answer now; a queued attempt is
    // aborted when it connects.
    x.abandoned = true;
    this.clearRedispatch(x);
    this.up!.onFailure(x, classifyUpstreamError(timeout));
  }

  /**
   * A timeout came while the client was still sending its body (a stalled or trickling upload):
   * 408, the attempt cancelled, and nothing counted against the app: no breaker failure, no
   * outlier failure, no retry (so no retry budget). The HTTP/1 connection is closed after
   * the answer, its body unread.
   */
  private clientTooSlow(x: Exchange, message: string): void {
    x.instruments.attempted('REQUEST_TIMEOUT');
    x.trace.attemptEnded(classifyUpstreamError(new SidecarError('REQUEST_TIMEOUT', message)));
    // The attempt's events stop reaching the exchange: it counts nothing against the endpoint
    // and asks for no retry. It is cancelled in onEnd, once the 408 is out.
    x.abandoned = true;
    refuseLaterRequests(x.req);
    this.up!.onClientTimeout(x, message);
  }

  override onEnd(x: Exchange): void {
    // An attempt still running once the response is over (a 408 answered while the client's
    // body was still due) is cancelled now, not before: undici's abort destroys the body it
    // reads, the client's request, and with it the client's connection and the answer.
    const handler = x.handler;
    if (handler !== undefined && handler.abort !== undefined && !handler.done) handler.abort(x.clientGone ? CLIENT_GONE : EXCHANGE_ENDED);
    this.clearRedispatch(x);
  }

  private clearRedispatch(x: Exchange): void {
    if (x.redispatchTimer !== undefined) {
      clearTimeout(x.redispatchTimer);
      x.redispatchTimer = undefined;
    }
  }
}

function attemptBody(x: Exchange): Readable | Buffer | null {
  if (!x.hasBody) return null;
  return x.body !== undefined ? x.body.forAttempt() : x.requestBodySource();
}

/**
 * The body of an attempt over HTTP/2: a streamed one goes as a MultiplexedBody (released by the
 * attempt's handler when the attempt ends). A body declared empty with a content-length such
 * as `00` is sent as none.
 */
function multiplexedBody(x: Exchange): MultiplexedBody | Buffer | null {
  if (Number(x.req.headers['content-length']) === 0) return null;
  const body = attemptBody(x);
  return body === null || Buffer.isBuffer(body) ? body : new MultiplexedBody(body);
}

/**
 * Whether a timeout of this attempt is the client's doing: the attempt is sending the body
 * (it has its connection), the client has not sent all of it, and nothing it sent is left
 * unread (had the app stopped reading, the body would pile up in the request's buffer).
 */
function clientStillSending(x: Exchange, handler: AttemptHandler): boolean {
  const req = x.req;
  return x.hasBody && handler.abort !== undefined && !handler.done && !req.complete && req.readableLength === 0;
}

// Timers take the exchange as an argument: no closure is allocated per request.
function redispatch(x: Exchange): void {
  x.chain.terminal.redispatch(x);
}

function statusClass(status: number): string {
  return status >= 500 ? '5xx' : status >= 400 ? '4xx' : status >= 300 ? '3xx' : '2xx';
}
