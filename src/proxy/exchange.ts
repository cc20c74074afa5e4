import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { ClusterRoute } from '../config/types';
import { ERROR_STATUS, SidecarError, type ErrorCode } from '../errors';
import { classifyUpstreamError, type AttemptFailure } from '../upstream/error-map';
import type { ClusterRuntime, EndpointRuntime } from '../upstream/cluster';
import { limitRequestBody } from './body-limit';
import { responseFlags } from '../telemetry/response-flags';
import { noopRequestTrace, type RequestTrace } from '../telemetry/tracing';
import { downstreamResponseHeaders, setAttempt } from './headers';
import { abortResponse, isHttp1, responseCompleted } from './http2-request';
import { sendError } from './respond';
import type { ListenerIdentity, ProxyServices } from './state';

/**
 * The per-request state of one proxied exchange: short-lived, created when a request matches
 * a cluster route and dropped when the client's response closes. Policies (retries, breaker,
 * tracing) hook in at `dispatchAttempt` and `onAttemptFailed`.
 */
export class ProxyExchange {
  private attempt = 0;
  private endpoint: EndpointRuntime | undefined;
  private abortAttempt: ((reason: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private responseStarted = false;
  private clientGone = false;
  /** Set once the exchange answered without the current attempt: a late attempt is aborted on connect. */
  private abandoned = false;
  private finished = false;
  private status = 0;
  private errorCode: ErrorCode | undefined;
  private bytesIn = 0;
  private bytesOut = 0;
  private attemptStartedAt = 0;
  private upstreamMs: number | undefined;
  private requestBody: Readable | undefined;

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

  start(): void {
    this.cluster.acquire();
    this.res.on('close', this.onClientClose);
    this.res.on('drain', this.onClientDrain);
    this.deadlineTimer = setTimeout(this.onDeadline, this.route.timeoutMs);
    this.dispatchAttempt();
  }

  private dispatchAttempt(): void {
    const endpoint = this.cluster.pick(this.endpoint);
    if (endpoint === undefined) {
      this.respondWithError('NO_HEALTHY_UPSTREAM');
      return;
    }
    this.endpoint = endpoint;
    this.attempt++;
    this.abortAttempt = undefined;
    setAttempt(this.upstreamHeaders, this.attempt);
    this.trace.attemptStarted(this.attempt, endpoint.config.url, this.path, this.upstreamHeaders);
    this.attemptStartedAt = performance.now();
    const options: Dispatcher.DispatchOptions = {
      path: this.path,
      method: this.req.method as Dispatcher.HttpMethod,
      headers: this.upstreamHeaders,
      body: this.hasBody ? (this.requestBody ??= limitRequestBody(this.req, this.route.maxRequestBodyBytes)) : null,
      // Once the response streams, the route timeout bounds the silence between two chunks.
      bodyTimeout: this.route.timeoutMs,
      headersTimeout: 0,
    };
    endpoint.pool.dispatch(options, new AttemptHandler(this, this.attempt, endpoint));
  }

  /** Whether events of this attempt may still shape the client's response. */
  isCurrent(attempt: number): boolean {
    return attempt === this.attempt && !this.abandoned;
  }

  // --- upstream events (from AttemptHandler, only for the current attempt) ---

  onAttemptConnect(abort: (reason: Error) => void): void {
    this.abortAttempt = abort;
  }

  onAttemptHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: undici consumes informational responses.
    this.trace.attemptResponded(statusCode);
    this.upstreamMs = performance.now() - this.attemptStartedAt;
    this.clearDeadline();
    this.responseStarted = true;
    this.status = statusCode;
    this.resumeUpstream = resume;
    this.services.metrics.upstreamAttempts.labels(this.cluster.config.name, statusClass(statusCode)).inc();
    const headers = downstreamResponseHeaders(rawHeaders, this.route.responseHeaders, this.requestId);
    try {
      // HTTP/2 has no reason phrase (node:http2 warns when one is given).
      if (statusText && isHttp1(this.req)) this.res.writeHead(statusCode, statusText, headers);
      else this.res.writeHead(statusCode, headers);
    } catch (error) {
      // A header value Node refuses to send (it would be a response-splitting vector).
      this.responseStarted = false;
      this.abortAttempt?.(new SidecarError('UPSTREAM_PROTOCOL_ERROR', 'the upstream sent a header the sidecar cannot relay', { cause: error }));
      return false;
    }
    // Body bytes that came in the same read as the headers are written before this runs and
    // carry the headers with them; otherwise (an event stream waiting for its first event)
    // the client gets the headers now instead of with the first chunk.
    queueMicrotask(this.flushHeadersIfIdle);
    return true;
  }

  private readonly flushHeadersIfIdle = (): void => {
    // (headersSent turns true at writeHead, before anything is on the wire.)
    if (this.bytesOut === 0 && !this.res.writableEnded && !this.res.destroyed) this.res.flushHeaders();
  };

  onAttemptData(chunk: Buffer): boolean {
    this.bytesOut += chunk.length;
    return this.res.write(chunk);
  }

  onAttemptBodySent(size: number): void {
    this.bytesIn += size;
  }

  onAttemptComplete(): void {
    this.abortAttempt = undefined;
    this.trace.attemptEnded();
    this.res.end();
  }

  onAttemptError(error: Error): void {
    this.abortAttempt = undefined;
    const failure = classifyUpstreamError(error);
    this.trace.attemptEnded(failure);
    if (this.responseStarted) {
      // Part of the response is already with the client: cutting the connection is the
      // only way to tell it the body is incomplete.
      this.errorCode = failure.code;
      abortResponse(this.res);
      return;
    }
    this.onAttemptFailed(failure);
  }

  private onAttemptFailed(failure: AttemptFailure): void {
    const endpoint = this.endpoint;
    // A body over the route's limit is the client's doing, not the endpoint's.
    if (endpoint !== undefined && failure.kind !== 'request-body') endpoint.failures++;
    this.services.metrics.upstreamAttempts.labels(this.cluster.config.name, failure.code).inc();
    this.respondWithError(failure.code);
  }

  // --- client side ---

  private readonly onClientDrain = (): void => {
    const resume = this.resumeUpstream;
    if (resume !== undefined) resume();
  };

  private readonly onClientClose = (): void => {
    if (!responseCompleted(this.res)) {
      this.clientGone = true;
      this.abandon(new SidecarError('UPSTREAM_RESET', 'the client went away'));
    }
    this.finish();
  };

  private readonly onDeadline = (): void => {
    this.deadlineTimer = undefined;
    if (this.responseStarted || this.finished) return;
    const timeout = new SidecarError('UPSTREAM_TIMEOUT');
    if (this.abortAttempt !== undefined) {
      // The attempt's error callback answers 504 (and no policy retries past the deadline).
      this.abortAttempt(timeout);
    } else {
      // Still queued for a connection: answer now, and abort the attempt when it connects.
      this.abandon(timeout);
      this.respondWithError('UPSTREAM_TIMEOUT');
    }
  };

  /** Stops caring about the current attempt; it is aborted now or as soon as it connects. */
  private abandon(reason: Error): void {
    this.abandoned = true;
    const abort = this.abortAttempt;
    this.abortAttempt = undefined;
    abort?.(reason);
  }

  private clearDeadline(): void {
    if (this.deadlineTimer !== undefined) {
      clearTimeout(this.deadlineTimer);
      this.deadlineTimer = undefined;
    }
  }

  private respondWithError(code: ErrorCode): void {
    this.clearDeadline();
    this.errorCode = code;
    this.status = this.res.headersSent ? this.status : ERROR_STATUS[code];
    sendError(this.res, code, this.requestId, undefined, { close: this.hasBody && !this.req.readableEnded });
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.clearDeadline();
    this.cluster.release();
    const durationMs = performance.now() - this.startedAt;
    const status = this.clientGone && !this.responseStarted ? 499 : this.status;
    const { metrics, accessLog } = this.services;
    const clusterName = this.cluster.config.name;
    const flags = responseFlags({ errorCode: this.errorCode, status, attempts: this.attempt, clientGone: this.clientGone });
    this.trace.end({ status, route: this.route.name, cluster: clusterName, errorCode: this.errorCode, flags });
    metrics.forRoute(this.listener.name, this.route.name, clusterName).answered(status, durationMs / 1000);
    if (this.upstreamMs !== undefined) metrics.upstreamDuration.labels(clusterName).observe(this.upstreamMs / 1000);
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

/**
 * undici's handler for one attempt. It forwards to the exchange only while its attempt is the
 * current one, so a late event of an abandoned attempt can never touch the client's response.
 *
 * It implements undici's classic handler callbacks (onHeaders/onData/...) rather than the
 * controller-based ones: undici 7 calls the classic ones directly with the raw header buffers,
 * while the newer API would parse every response's headers into an object first.
 */
class AttemptHandler implements Dispatcher.DispatchHandler {
  constructor(
    private readonly exchange: ProxyExchange,
    private readonly attempt: number,
    private readonly endpoint: EndpointRuntime,
  ) {
    endpoint.inFlight++;
    endpoint.requests++;
  }

  onConnect(abort: (err?: Error) => void): void {
    if (this.exchange.isCurrent(this.attempt)) this.exchange.onAttemptConnect(abort);
    else abort(new SidecarError('UPSTREAM_RESET', 'the attempt was abandoned before it was sent'));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (!this.exchange.isCurrent(this.attempt)) return false;
    return this.exchange.onAttemptHeaders(statusCode, rawHeaders, resume, statusText);
  }

  onData(chunk: Buffer): boolean {
    if (!this.exchange.isCurrent(this.attempt)) return false;
    return this.exchange.onAttemptData(chunk);
  }

  onBodySent(chunkSize: number): void {
    this.exchange.onAttemptBodySent(chunkSize);
  }

  onComplete(): void {
    this.endpoint.inFlight--;
    if (this.exchange.isCurrent(this.attempt)) this.exchange.onAttemptComplete();
  }

  onError(error: Error): void {
    this.endpoint.inFlight--;
    if (this.exchange.isCurrent(this.attempt)) this.exchange.onAttemptError(error);
  }
}

function statusClass(status: number): string {
  return status >= 500 ? '5xx' : status >= 400 ? '4xx' : status >= 300 ? '3xx' : '2xx';
}

function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
