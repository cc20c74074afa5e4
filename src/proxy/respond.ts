import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { DirectResponse, HeaderMutation } from '../config/types';
import { ERROR_MESSAGES, ERROR_STATUS, errorBody, grpcStatusOf, type ErrorCode } from '../core/errors';
import { encodeGrpcMessage, isGrpcRequest } from '../core/grpc';
import { ERROR_HEADER, REQUEST_ID_HEADER } from './headers';
import { abortResponse, isHttp1, stopReceivingBody } from './http2-request';
import { ALLOW_FORWARDED_METHODS } from './request-guard';
import { TRACE_ID_RESPONSE_HEADER } from '../telemetry/tracing';

/**
 * The body bytes of the answer the sidecar wrote itself on a response (an error or a direct
 * response), for the access log's `bytes_out`. Only those answers are noted: a proxied
 * response counts its own bytes as they stream.
 */
const localBodyBytes = new WeakMap<ServerResponse, number>();

/** The body bytes sendError or sendDirectResponse wrote on `res` (0 when neither did). */
export function localAnswerBodyBytes(res: ServerResponse): number {
  return localBodyBytes.get(res) ?? 0;
}

/**
 * Answers with one of the sidecar's own errors: `x-sidecar-error: CODE` and a JSON body. When
 * the response has already started, the only honest signal left is to cut the connection.
 * Returns the body bytes written (0 when the response could not be answered any more).
 */
export function sendError(
  res: ServerResponse,
  code: ErrorCode,
  requestId: string,
  message: string = ERROR_MESSAGES[code],
  options: {
    close?: boolean;
    /** More response headers as a flat [name, value, ...] list (a rate limit's Retry-After...). */
    headers?: readonly string[];
    /** Replaces the code's status (a fault abort answers the route's configured status). */
    status?: number;
  } = {},
): number {
  if (res.headersSent) {
    abortResponse(res);
    return 0;
  }
  if (res.destroyed) return 0;
  if (isGrpcRequest(res.req)) {
    sendGrpcError(res, code, requestId, message, options);
    return 0;
  }
  const body = errorBody(code, message, requestId);
  const headers: string[] = [
    'content-type', 'application/json',
    'content-length', String(Buffer.byteLength(body)),
    ERROR_HEADER, code,
    REQUEST_ID_HEADER, requestId,
  ];
  // The only 405 of the proxy path is the TRACE/TRACK refusal (request-guard.ts).
  if (code === 'METHOD_NOT_ALLOWED') headers.push('allow', ALLOW_FORWARDED_METHODS);
  if (options.headers !== undefined) headers.push(...options.headers);
  // HTTP/2 has no Connection header: the stream ends (see stopReceivingBody below).
  if (options.close && isHttp1(res.req)) headers.push('connection', 'close');
  // A writeHead that threw (a header value Node refuses) may have left its headers behind
  // on an HTTP/2 response; they must not leak into the error. The trace id stays: it was set
  // for whatever response this request gets.
  for (const name of res.getHeaderNames()) if (name !== TRACE_ID_RESPONSE_HEADER) res.removeHeader(name);
  const status = options.status ?? ERROR_STATUS[code];
  // HTTP/1: the reason phrase is explicit, because a writeHead that threw on an upstream's
  // invalid reason phrase leaves it in res.statusMessage and Node would reuse it and throw again.
  if (isHttp1(res.req)) res.writeHead(status, STATUS_CODES[status] ?? '', headers);
  else res.writeHead(status, headers);
  res.end(body);
  if (options.close) stopReceivingBody(res);
  const bytes = Buffer.byteLength(body);
  localBodyBytes.set(res, bytes);
  return bytes;
}

/**
 * A gRPC client gets the sidecar's error as gRPC defines errors: HTTP 200 with `grpc-status`
 * and `grpc-message` (in the trailers over HTTP/2), and `x-sidecar-error` in the headers as
 * every error answer has. A gRPC client reads an
 * HTTP 503 as UNAVAILABLE whatever happened; this keeps NO_ROUTE, timeouts and overload apart.
 */
function sendGrpcError(res: ServerResponse, code: ErrorCode, requestId: string, message: string, options: { close?: boolean }): void {
  const headers: string[] = ['content-type', 'application/grpc', ERROR_HEADER, code, REQUEST_ID_HEADER, requestId];
  const status = { 'grpc-status': String(grpcStatusOf(code)), 'grpc-message': encodeGrpcMessage(message) };
  for (const name of res.getHeaderNames()) if (name !== TRACE_ID_RESPONSE_HEADER) res.removeHeader(name);
  if (isHttp1(res.req)) {
    // HTTP/1.1 has no trailers without a chunked body: the status goes in the headers.
    headers.push('grpc-status', status['grpc-status'], 'grpc-message', status['grpc-message']);
    if (options.close) headers.push('connection', 'close');
    res.writeHead(200, 'OK', headers);
  } else {
    // HTTP/2: the status in the trailers (see takeGrpcStatusFields).
    res.addTrailers(status);
    res.writeHead(200, headers);
  }
  res.end();
  // Once the trailers are out: a reset sent earlier would overtake them, and the client
  // would be left without a status.
  if (options.close) res.once('finish', () => stopReceivingBody(res));
  localBodyBytes.set(res, 0);
}

export function sendDirectResponse(
  res: ServerResponse,
  direct: DirectResponse,
  mutation: HeaderMutation,
  requestId: string,
  isHead: boolean,
): number {
  const headers: string[] = [];
  const dropped = new Set(mutation.remove);
  for (const [name] of mutation.add) dropped.add(name.toLowerCase());
  if (!dropped.has('content-type')) headers.push('content-type', direct.contentType);
  const length = Buffer.byteLength(direct.body);
  headers.push('content-length', String(length));
  for (const [name, value] of mutation.add) headers.push(name, value);
  headers.push(REQUEST_ID_HEADER, requestId);
  res.writeHead(direct.status, headers);
  res.end(isHead ? undefined : direct.body);
  const bytes = isHead ? 0 : length;
  localBodyBytes.set(res, bytes);
  return bytes;
}

/**
 * A redirect the sidecar answers itself (a `redirect` route, or a path whose escaped slashes
 * the listener unescapes). The body is empty: clients follow Location.
 */
export function sendRedirect(res: ServerResponse, status: number, location: string, mutation: HeaderMutation, requestId: string): void {
  const headers: string[] = ['location', location, 'content-length', '0'];
  for (const [name, value] of mutation.add) headers.push(name, value);
  headers.push(REQUEST_ID_HEADER, requestId);
  res.writeHead(status, headers);
  res.end();
  localBodyBytes.set(res, 0);
}
