import { ERROR_STATUS, grpcStatusOf, SidecarError, type ErrorCode } from '../core/errors';
import { GRPC_STATUS, grpcMethodOf, grpcStatusInRawHeaders, parseGrpcStatus, takeGrpcStatusFields } from '../core/grpc';
import { accessLogEntry } from '../telemetry/access-log';
import { responseFlags } from '../telemetry/response-flags';
import type { AttemptFailure } from '../upstream/error-map';
import { downstreamResponseHeaders, downstreamTrailers, REQUEST_ID_HEADER, type ResponseTrailers } from '../proxy/headers';
import { abortResponse, isHttp1, responseCompleted } from '../proxy/http2-request';
import { sendError } from '../proxy/respond';
import type { AttemptHandler } from './attempt';
import type { Exchange } from './exchange';
import { Interceptor } from './interceptor';

/**
 * The head of every chain: the client's side of the exchange. It relays the response the
 * steps below let through (headers, then the body with the client's backpressure), answers
 * with the sidecar's error when they report one, and when the client's response closes it
 * ends the chain (each step releases what it holds) and records the exchange once: the
 * server span, the route's metrics and the access log line.
 */
export class ObserveInterceptor extends Interceptor {
  dispatch(x: Exchange): void {
    const cluster = x.cluster;
    cluster.acquire();
    x.res.on('close', x.onClientClose);
    // Every request of the cluster counts towards its retry budget, retried or not.
    cluster.retryBudget.recordRequest();
    this.next!.dispatch(x);
  }

  override onAttemptStart(): void {}

  override onAttemptEnd(): void {}

  override onResponse(x: Exchange, handler: AttemptHandler, statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    x.upstreamMs = performance.now() - x.attemptStartedAt;
    x.responseStarted = true;
    x.status = statusCode;
    x.resumeUpstream = resume;
    // A trailers-only answer (a gRPC error) has its status in the headers; otherwise the trailers bring it.
    if (x.grpc) x.grpcStatus = grpcStatusInRawHeaders(rawHeaders);
    const headers = downstreamResponseHeaders(rawHeaders, x.route.responseHeaders, x.requestId);
    if (x.grpcStatus !== undefined && !isHttp1(x.req)) {
      const status = takeGrpcStatusFields(headers);
      if (status !== undefined) x.res.addTrailers(status);
    }
    try {
      // HTTP/2 has no reason phrase (node:http2 warns when one is given).
      if (statusText && isHttp1(x.req)) x.res.writeHead(statusCode, statusText, headers);
      else x.res.writeHead(statusCode, headers);
      x.relayedHeaders = headers;
    } catch (error) {
      // A header value Node refuses to send (it would be a response-splitting vector).
      x.responseStarted = false;
      handler.abort?.(new SidecarError('UPSTREAM_PROTOCOL_ERROR', 'the upstream sent a header the sidecar cannot relay', { cause: error }));
      return false;
    }
    // Body bytes that came in the same read as the headers are written before this runs and
    // carry the headers with them; otherwise (an event stream waiting for its first event)
    // the client gets the headers now instead of with the first chunk.
    // (A tick, not a microtask: queueMicrotask makes an AsyncResource for every call.)
    process.nextTick(flushHeadersIfIdle, x);
    return true;
  }

  /** A chunk of the relayed response body (from the attempt's handler). */
  onData(x: Exchange, chunk: Buffer): boolean {
    // A compressor piped to the client (compression.ts) counts the bytes it sends itself.
    const sink = x.bodySink;
    if (sink === undefined) x.bytesOut += chunk.length;
    const flushed = (sink ?? x.res).write(chunk);
    if (!flushed) {
      // Listened to from the first full write on: most responses never fill the socket.
      if (!x.listeningForDrain) {
        x.listeningForDrain = true;
        (sink ?? x.res).on('drain', () => onClientDrain(x));
      }
      // The upstream is paused until 'drain', and undici's body timeout does not run while paused.
      if (x.stallTimer === undefined) x.stallTimer = setTimeout(clientStalled, x.route.timeoutMs, x);
    }
    return flushed;
  }

  onComplete(x: Exchange, trailers?: ResponseTrailers): void {
    x.trace.attemptEnded();
    const fields = downstreamTrailers(trailers);
    if (x.grpc && fields !== undefined && fields['grpc-status'] !== undefined) x.grpcStatus = parseGrpcStatus(fields['grpc-status']);
    // HTTP/2 sends them as a trailing HEADERS frame; HTTP/1.1 only after a chunked body
    // (Node drops them from a response framed by Content-Length). A compressed body has none.
    if (fields !== undefined && x.bodySink === undefined) {
      try {
        x.res.addTrailers(fields);
      } catch {
        // A trailer value Node refuses to send (CR/LF): the response cannot end as the app meant.
        x.errorCode = 'UPSTREAM_PROTOCOL_ERROR';
        abortResponse(x.res);
        return;
      }
    }
    (x.bodySink ?? x.res).end();
  }

  override onFailure(x: Exchange, failure: AttemptFailure): void {
    if (x.responseStarted) {
      // Part of the response is already with the client: cutting the connection is the
      // only way to tell it the body is incomplete.
      x.errorCode = failure.code;
      abortResponse(x.res);
      return;
    }
    respondWithError(x, failure.code, failure.message);
  }

  override onRefused(x: Exchange, code: ErrorCode, message: string): void {
    // The route's own policies count their refusals in their own metrics.
    if (!ROUTE_POLICY_REFUSALS.has(code)) x.services.metrics.circuitRejections.labels(x.cluster.config.name, code.toLowerCase()).inc();
    respondWithError(x, code, message);
  }

  override onClientTimeout(x: Exchange, message: string): void {
    respondWithError(x, 'REQUEST_TIMEOUT', message);
  }

  override onDenied(x: Exchange, code: ErrorCode, message: string, headers: readonly string[]): void {
    if (x.finished) return;
    respondWithError(x, code, message, headers);
  }

  override onAnswered(x: Exchange, status: number, headers: readonly string[], body?: Buffer): void {
    if (x.finished || x.res.headersSent) return;
    x.status = status;
    const length = body?.length ?? 0;
    const close = x.hasBody && !x.req.readableEnded && isHttp1(x.req);
    // RFC 9110 §8.6: no Content-Length on a 204 or 304.
    const framing = status === 204 || status === 304 ? [] : ['content-length', String(length)];
    x.res.writeHead(status, [...headers, ...framing, REQUEST_ID_HEADER, x.requestId, ...(close ? ['connection', 'close'] : [])]);
    x.res.end(x.req.method === 'HEAD' ? undefined : body);
    x.bytesOut += length;
  }

  onClientClose(x: Exchange): void {
    if (!responseCompleted(x.res)) {
      x.clientGone = true;
      x.abandoned = true;
    }
    this.finish(x);
  }

  private finish(x: Exchange): void {
    if (x.finished) return;
    x.finished = true;
    this.next!.onEnd(x);
    clearStallTimer(x);
    const cluster = x.cluster;
    cluster.release();
    const durationMs = performance.now() - x.startedAt;
    const status = x.clientGone && !x.responseStarted ? 499 : x.status;
    const clusterName = cluster.config.name;
    const flags = responseFlags({ errorCode: x.errorCode, status, attempts: x.attempt, clientGone: x.clientGone, clientStalled: x.clientStalled, faultInjected: x.faultInjected });
    if (x.grpc) {
      x.grpcStatus ??= grpcStatusWithout(x);
      x.services.metrics.grpcResponsesTotal.labels(x.listener.name, x.route.name, clusterName, String(x.grpcStatus)).inc();
    }
    x.trace.end({ status, route: x.route.name, cluster: clusterName, errorCode: x.errorCode, flags, grpc: x.grpc ? { status: x.grpcStatus, method: grpcMethodOf(x.req.url) } : undefined });
    const instruments = x.instruments;
    instruments.answered(status, durationMs / 1000);
    if (x.upstreamMs !== undefined) instruments.upstreamResponded(x.upstreamMs / 1000);
    const accessLog = x.services.accessLog;
    // A line nobody reads is not built (an error line still is: recent errors keep it).
    if (accessLog.enabled === false && x.errorCode === undefined) return;
    accessLog.write(accessLogEntry(x, durationMs, flags, x.trace, status));
  }
}

export const ROUTE_POLICY_REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['RATE_LIMITED', 'FAULT_ABORT']);

function respondWithError(x: Exchange, code: ErrorCode, message: string | undefined, headers: readonly string[] | undefined = x.rateLimitHeaders): void {
  x.errorCode = code;
  const answered = !x.res.headersSent;
  const status = code === 'FAULT_ABORT' ? x.faultAbortStatus : undefined;
  x.bytesOut += sendError(x.res, code, x.requestId, message, { close: x.hasBody && !x.req.readableEnded, headers, status });
  // The status written (200 for a gRPC client, whose error is in grpc-status).
  if (answered) x.status = x.res.headersSent ? x.res.statusCode : (status ?? ERROR_STATUS[code]);
  if (answered && x.grpc) x.grpcStatus = grpcStatusOf(code);
}

/**
 * The status a gRPC client was left with when no grpc-status reached it: CANCELLED when it
 * left, the status of the sidecar's error when the sidecar cut the response, UNKNOWN for an
 * answer without one (the app's HTTP error page, say).
 */
function grpcStatusWithout(x: Exchange): number {
  if (x.clientGone) return GRPC_STATUS.CANCELLED;
  if (x.errorCode !== undefined) return grpcStatusOf(x.errorCode);
  return GRPC_STATUS.UNKNOWN;
}

function onClientDrain(x: Exchange): void {
  clearStallTimer(x);
  const resume = x.resumeUpstream;
  if (resume !== undefined) resume();
}

function clearStallTimer(x: Exchange): void {
  if (x.stallTimer !== undefined) {
    clearTimeout(x.stallTimer);
    x.stallTimer = undefined;
  }
}

// Timers and the tick take the exchange as an argument: no closure is allocated per request.

/** The client read nothing of the response for the route timeout. */
function clientStalled(x: Exchange): void {
  x.stallTimer = undefined;
  x.clientStalled = true;
  abortResponse(x.res);
}

/** The tick after the response headers (see onResponse). */
function flushHeadersIfIdle(x: Exchange): void {
  // (headersSent turns true at writeHead, before anything is on the wire.)
  if (x.bytesOut === 0 && !x.res.writableEnded && !x.res.destroyed) x.res.flushHeaders();
}
