import type { Readable } from 'node:stream';

const LAST_CHUNK = Buffer.alloc(0);

/**
 * A streamed request body of an attempt over HTTP/2, in the form the HTTP/2 client
 * (upstream/http2-pool.ts) reads: a Blob-like object (`Symbol.toStringTag` 'Blob' and a
 * `stream()` method, a form undici's dispatchers also accept) whose `stream()` returns an
 * iterable of promises of the stream's chunks, read one at a time as the client asks (the
 * client waits for the HTTP/2 stream's buffer to drain before it asks for the next, so the
 * upload keeps its backpressure). When the stream ends the last promise gives an empty chunk
 * and the iteration stops at the next step; a stream that fails or closes early rejects the
 * pending promise, and the client resets the attempt's stream. The body has no `size`: the
 * request's own content-length, if any, is sent.
 *
 * The client does not destroy the source when it cancels the attempt: `release` does it,
 * called when the attempt ends (AttemptHandler). No method is named `read`: undici calls
 * `body.read(0)` on any body that has one.
 */
export class MultiplexedBody implements Iterator<Promise<Buffer>> {
  private started = false;
  private ended = false;
  private released = false;
  private failure: Error | undefined;
  private waiting: { resolve: (chunk: Buffer) => void; reject: (error: Error) => void } | undefined;

  constructor(private readonly source: Readable) {
    // Listened to for the body's whole life: the stream may fail between two reads (the client's reset), and an 'error' without a
    // listener would be thrown.
    source.on('error', this.onError);
  }

  get [Symbol.toStringTag](): string {
    return 'Blob';
  }

  /** What the client writes: the chunks, one promise at a time (see above). */
  stream(): Iterable<Promise<Buffer>> {
    return { [Symbol.iterator]: () => this };
  }

  next(): IteratorResult<Promise<Buffer>> {
    if (this.ended || this.released) return { done: true, value: undefined };
    this.started = true;
    return { done: false, value: new Promise<Buffer>((resolve, reject) => this.pull(resolve, reject)) };
  }

  private pull(resolve: (chunk: Buffer) => void, reject: (error: Error) => void): void {
    const source = this.source;
    if (this.failure !== undefined) return reject(this.failure);
    const chunk = source.read() as Buffer | null;
    if (chunk !== null) return resolve(chunk);
    if (source.readableEnded) {
      this.ended = true;
      return resolve(LAST_CHUNK);
    }
    if (source.destroyed) return reject(source.errored ?? prematureClose());
    this.waiting = { resolve, reject };
    source.on('readable', this.onReadable);
    source.on('end', this.onReadable);
    source.on('close', this.onClose);
  }

  private readonly onReadable = (): void => {
    const waiting = this.detach();
    if (waiting !== undefined) this.pull(waiting.resolve, waiting.reject);
  };

  private readonly onError = (error: Error): void => {
    this.failure ??= error;
    this.detach()?.reject(error);
  };

  private readonly onClose = (): void => {
    if (!this.source.readableEnded) this.detach()?.reject(this.source.errored ?? prematureClose());
  };

  private detach(): { resolve: (chunk: Buffer) => void; reject: (error: Error) => void } | undefined {
    const waiting = this.waiting;
    if (waiting === undefined) return undefined;
    this.waiting = undefined;
    const source = this.source;
    source.off('readable', this.onReadable);
    source.off('end', this.onReadable);
    source.off('close', this.onClose);
    return waiting;
  }

  /**
   * The attempt is over. After a failure the stream is destroyed if the client had started to
   * send it and did not reach its end; a body not started (a failure to
   * connect) is left whole for another attempt. After an answer that came before the whole
   * body was sent, the rest is read and dropped. A read still pending fails, which ends
   * the client's loop over the body.
   */
  release(error: Error | undefined): void {
    if (this.released) return;
    this.released = true;
    this.detach()?.reject(error ?? ANSWERED);
    const source = this.source;
    if (!this.started || source.readableEnded || source.destroyed) return;
    if (error !== undefined) source.destroy(error);
    else source.resume();
  }
}

const ANSWERED = new Error('the attempt was answered before its whole body was sent');

function prematureClose(): Error {
  return Object.assign(new Error('the request body closed before its end'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}
