import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { DirectResponse, HeaderMutation } from '../config/types';
import { ERROR_MESSAGES, ERROR_STATUS, errorBody, type ErrorCode } from '../errors';
import { ERROR_HEADER, REQUEST_ID_HEADER } from './headers';
import { abortResponse, isHttp1, stopReceivingBody } from './http2-request';
import { TRACE_ID_RESPONSE_HEADER } from '../telemetry/tracing';

/**
 * Answers with one of the sidecar's own errors: `x-sidecar-error: CODE` and a JSON body. When
 * the response has already started, the only honest signal left is to cut the connection.
 */
export function sendError(
  res: ServerResponse,
  code: ErrorCode,
  requestId: string,
  message: string = ERROR_MESSAGES[code],
  options: { close?: boolean } = {},
): void {
  if (res.headersSent) {
    abortResponse(res);
    return;
  }
  if (res.destroyed) return;
  const body = errorBody(code, message, requestId);
  const headers: string[] = [
    'content-type', 'application/json',
    'content-length', String(Buffer.byteLength(body)),
    ERROR_HEADER, code,
    REQUEST_ID_HEADER, requestId,
  ];
  // HTTP/2 has no Connection header: the stream ends (see stopReceivingBody below).
  if (options.close && isHttp1(res.req)) headers.push('connection', 'close');
  // A writeHead that threw (a header value Node refuses) may have left its headers behind
  // on an HTTP/2 response; they must not leak into the error. The trace id stays: it was set
  // for whatever response this request gets.
  for (const name of res.getHeaderNames()) if (name !== TRACE_ID_RESPONSE_HEADER) res.removeHeader(name);
  const status = ERROR_STATUS[code];
  // HTTP/1: the reason phrase is explicit, because a writeHead that threw on an upstream's
  // invalid reason phrase leaves it in res.statusMessage and Node would reuse it and throw again.
  if (isHttp1(res.req)) res.writeHead(status, STATUS_CODES[status] ?? '', headers);
  else res.writeHead(status, headers);
  res.end(body);
  if (options.close) stopReceivingBody(res);
}

export function sendDirectResponse(
  res: ServerResponse,
  direct: DirectResponse,
  mutation: HeaderMutation,
  requestId: string,
  isHead: boolean,
): void {
  const headers: string[] = [];
  const dropped = new Set(mutation.remove);
  for (const [name] of mutation.add) dropped.add(name.toLowerCase());
  if (!dropped.has('content-type')) headers.push('content-type', direct.contentType);
  headers.push('content-length', String(Buffer.byteLength(direct.body)));
  for (const [name, value] of mutation.add) headers.push(name, value);
  headers.push(REQUEST_ID_HEADER, requestId);
  res.writeHead(direct.status, headers);
  res.end(isHead ? undefined : direct.body);
}
