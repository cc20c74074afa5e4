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
  // stream the client resets ends its request like a complete one (Node's compat layer
  // pushes the end and reports `complete`): only `aborted` tells the two apart, with or
  // without a content-length, so every HTTP/2 body goes through here.
  req.once('error', (error) => limiter.destroy(error));
  req.once('close', () => {
    if ((!req.complete || (http2 && req.aborted)) && !limiter.destroyed) limiter.destroy(prematureClose());
  });
  req.pipe(limiter);
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

function prematureClose(): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error('the client closed the connection before the request body ended');
  error.code = 'ECONNRESET';
  return error;
}
