import type { IncomingMessage } from 'node:http';
import { Http2ServerRequest } from 'node:http2';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { SidecarError } from '../core/errors';

/**
 * The request body as the upstream reads it, bounded by the route's `maxRequestBodyBytes`.
 *
 * An HTTP/1 body with Content-Length is returned as it is: the handler already refused a
 * declared length over the limit, and Node's parser never delivers more bytes than declared. A chunked
 * body is counted as it streams and fails with REQUEST_TOO_LARGE the moment it crosses the
 * limit; the attempt then ends with that error, and the exchange answers 413 (and closes the
 * connection) if nothing of the response was sent yet.
 *
 * Self-contained on purpose: it wraps one stream and returns one stream, so it composes with
 * anything that consumes or buffers the body afterwards.
 */
export function limitRequestBody(req: IncomingMessage, maxBytes: number): Readable {
  const http2 = req instanceof Http2ServerRequest;
  if (req.headers['content-length'] !== undefined && !http2) return req;
  const limiter = new BodyLimiter(maxBytes);
  // pipe() does not forward errors or an early end of the source: a client that leaves
  // mid-body must fail the upstream request, not leave it waiting for the rest. An HTTP/2
  // stream that is reset (by the client, or with its whole connection) ends its request like
  // a complete one: Node pushes the end, reports `complete`, and reports `aborted` only in
  // the same turn, sometimes after the end. So an HTTP/2 body's end is passed on one turn
  // later, once `aborted` has been set or not; with or without a content-length, every
  // HTTP/2 body goes through here, or a cut body would reach the app as a whole one.
  req.once('error', (error) => limiter.destroy(error));
  // The limiter fails when the client leaves, whoever reads it then: an attempt still queued
  // for a connection, or one already over (its listeners gone). Its readers listen for
  // themselves; this one keeps an error nobody reads any more from being thrown.
  limiter.on('error', ignoreError);
  req.once('close', () => {
    if ((!req.complete || (http2 && req.aborted)) && !limiter.destroyed) limiter.destroy(prematureClose());
  });
  if (http2) {
    req.pipe(limiter, { end: false });
    req.once('end', () => setImmediate(endUnlessAborted, req, limiter));
  } else req.pipe(limiter);
  return limiter;
}

class BodyLimiter extends Transform {
  private received = 0;

  constructor(private readonly maxBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length;
    if (this.received > this.maxBytes) {
      callback(
        new SidecarError(
          'REQUEST_TOO_LARGE',
          `the chunked request body crossed the route's limit of ${this.maxBytes} bytes`,
        ),
      );
      return;
    }
    callback(null, chunk);
  }
}

function ignoreError(): void {}

function endUnlessAborted(req: IncomingMessage, limiter: Transform): void {
  if (limiter.destroyed) return;
  if (req.aborted) limiter.destroy(prematureClose());
  else limiter.end();
}

function prematureClose(): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error('the client closed the connection before the request body ended');
  error.code = 'ECONNRESET';
  return error;
}
