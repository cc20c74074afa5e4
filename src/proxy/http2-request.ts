import type { IncomingMessage, ServerResponse } from 'node:http';
import { constants, Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';

/**
 * What the proxy reads differently when a request arrived over HTTP/2.
 *
 * A TLS listener hands HTTP/2 streams to the same request handler as HTTP/1.1 requests,
 * as node:http2's compatibility objects (Http2ServerRequest/Response). They implement the
 * part of the HTTP/1 API the proxy uses; the functions below are the places where the two
 * protocols differ and the HTTP/1 reading would be wrong.
 */

/**
 * The authority the client addressed: `:authority` for HTTP/2 (it takes the place of Host,
 * RFC 9113 §8.3.1), the Host header for HTTP/1.
 */
export function requestAuthority(req: IncomingMessage): string | undefined {
  if (req instanceof Http2ServerRequest) {
    const authority = req.headers[':authority'];
    if (typeof authority === 'string' && authority !== '') return authority;
  }
  return req.headers.host;
}

/**
 * The object that stands for the client's connection, one per connection for both
 * protocols (per-connection facts are cached on it). For HTTP/2, `req.socket` is a new
 * proxy per stream; the session's socket is shared by all streams of the connection.
 */
export function connectionOf(req: IncomingMessage): Socket {
  if (req instanceof Http2ServerRequest) {
    const session = req.stream.session;
    if (session !== undefined) return session.socket;
  }
  return req.socket;
}

/**
 * Whether a body follows the headers. HTTP/1.1 announces it in the headers (RFC 9112 §6.3);
 * an HTTP/2 request may send DATA frames without content-length, and has none when its
 * HEADERS frame ended the stream (or when it declares `content-length: 0`).
 */
export function requestHasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (req instanceof Http2ServerRequest) return !req.stream.endAfterHeaders && length !== '0';
  if (length !== undefined) return length !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

/** HTTP/2 has no reason phrase and no connection-level headers such as `Connection: close`. */
export function isHttp1(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 1;
}

/**
 * Whether the whole response reached the client, as opposed to being cut short. On HTTP/2
 * `writableFinished` also turns true when a reset stream is destroyed, so the response must
 * have been ended by the sidecar and the stream closed without an error code.
 */
export function responseCompleted(res: ServerResponse): boolean {
  if (res instanceof Http2ServerResponse) return res.writableEnded && res.stream.rstCode === constants.NGHTTP2_NO_ERROR;
  return res.writableFinished;
}

/**
 * Tells the client that a started response is incomplete. HTTP/1.1: closing the connection.
 * HTTP/2: resetting the stream with INTERNAL_ERROR; a plain destroy() would reset it with
 * NO_ERROR, which clients take as a complete response.
 */
export function abortResponse(res: ServerResponse): void {
  if (res instanceof Http2ServerResponse) res.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
  else res.destroy();
}

/**
 * After a complete answer to an HTTP/2 request whose body is still due (a refusal, a 408),
 * asks the client to stop sending it: RST_STREAM NO_ERROR once the response is out, as RFC
 * 9113 §8.1 allows. Otherwise the stream stays open until the client ends or resets it,
 * which a client that stalled its body may never do. (HTTP/1 closes the connection instead.)
 */
export function stopReceivingBody(res: ServerResponse): void {
  if (res instanceof Http2ServerResponse && !res.req.complete) res.stream.close(constants.NGHTTP2_NO_ERROR);
}
