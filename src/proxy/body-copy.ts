import { Transform, type Readable, type TransformCallback } from 'node:stream';

/**
 * The request body as the upstream reads it, with a copy kept on the side (for a mirror): the
 * bytes pass through unchanged and at the upstream's pace, and once the body has ended
 * `done` gets the copy, or undefined when the body was larger than `maxBytes` (the copy is
 * then dropped as soon as it crosses the cap, so it never holds more). A body that fails or
 * is cut short calls nothing.
 *
 * Self-contained like body-limit.ts: it wraps one stream and returns one stream.
 */
export function copyRequestBody(source: Readable, maxBytes: number, done: (body: Buffer | undefined) => void): Readable {
  const copy = new BodyCopy(maxBytes, done);
  // pipe() does not forward errors or an early end of the source.
  source.once('error', (error) => copy.destroy(error));
  source.once('close', () => {
    if (!source.readableEnded && !copy.destroyed) copy.destroy(prematureClose());
  });
  source.pipe(copy);
  return copy;
}

class BodyCopy extends Transform {
  private chunks: Buffer[] | undefined = [];
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly done: (body: Buffer | undefined) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.chunks !== undefined) {
      this.bytes += chunk.length;
      if (this.bytes > this.maxBytes) this.chunks = undefined;
      else this.chunks.push(chunk);
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const chunks = this.chunks;
    this.chunks = undefined;
    callback();
    this.done(chunks === undefined ? undefined : Buffer.concat(chunks));
  }
}

function prematureClose(): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error('the client closed the connection before the request body ended');
  error.code = 'ECONNRESET';
  return error;
}
