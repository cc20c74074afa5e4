import { Readable } from 'node:stream';
import { SidecarError } from '../core/errors';

/**
 * A request body that can be sent more than once.
 *
 * Each attempt reads its own view: it first replays the chunks already read from the client,
 * then continues with the client's stream. Chunks are read from the client only when the
 * current view asks for more, so the upload keeps its backpressure (nothing is read ahead of
 * the app, and nothing at all between two attempts) and at most `maxBytes` are held.
 *
 * Once more than `maxBytes` have been read the kept chunks are dropped: the current attempt
 * goes on streaming the rest of the body, but no other attempt can follow (`replayable`
 * turns false and the retry decision says `body_too_large`).
 */
export class ReplayableBody {
  private chunks: Buffer[] = [];
  private keptBytes = 0;
  private ended = false;
  private failure: Error | undefined;
  private view: BodyView | undefined;
  private whole: Buffer | undefined;
  private keeping = true;

  constructor(
    private readonly source: Readable,
    private readonly maxBytes: number,
  ) {
    source.on('readable', this.onReadable);
    source.on('end', this.onEnd);
    source.on('error', this.onError);
  }

  /** Whether another attempt can still be given the whole body. */
  get replayable(): boolean {
    return this.keeping && this.failure === undefined;
  }

  /**
   * The body for the next attempt. The previous attempt's view is cut off: an attempt that is
   * replaced gets no more of the body. Once the client's body is complete it is handed over as
   * one buffer (undici then sends it with a content-length, in one write).
   */
  forAttempt(): Readable | Buffer {
    this.detach();
    if (!this.replayable) {
      // The decision never asks for this; failing the attempt is the safe answer if it does.
      return Readable.from(failingBody());
    }
    if (this.ended) return (this.whole ??= Buffer.concat(this.chunks, this.keptBytes));
    const view = new BodyView(this);
    this.view = view;
    return view;
  }

  /**
   * The exchange is over: stops keeping chunks, and lets whatever the client still sends
   * drain (as Node does for a body nobody read) so its keep-alive connection stays usable.
   */
  dispose(): void {
    this.detach();
    this.source.off('readable', this.onReadable);
    this.source.off('end', this.onEnd);
    this.source.off('error', this.onError);
    this.chunks = [];
    this.whole = undefined;
    if (!this.source.readableEnded && !this.source.destroyed) this.source.resume();
  }

  /** Feeds `view` while it wants more; called from its `_read` and when the client sends data. */
  pump(view: BodyView): void {
    if (view !== this.view) return;
    while (view.next < this.chunks.length) {
      if (!view.push(this.chunks[view.next++])) return;
    }
    for (;;) {
      if (this.failure !== undefined) {
        view.destroy(this.failure);
        return;
      }
      if (this.ended) {
        view.push(null);
        return;
      }
      const chunk = this.source.read() as Buffer | null;
      if (chunk === null) return; // 'readable' or 'end' calls back
      this.keep(chunk, view);
      if (!view.push(chunk)) return;
    }
  }

  /** The view went away (its attempt ended or undici destroyed it). */
  release(view: BodyView): void {
    if (this.view === view) this.view = undefined;
  }

  private keep(chunk: Buffer, view: BodyView): void {
    if (!this.keeping) return;
    this.keptBytes += chunk.length;
    if (this.keptBytes > this.maxBytes) {
      // Every kept chunk was already pushed to `view` (reading happens only once it caught up).
      this.keeping = false;
      this.chunks = [];
      return;
    }
    this.chunks.push(chunk);
    view.next = this.chunks.length;
  }

  private detach(): void {
    const view = this.view;
    this.view = undefined;
    if (view !== undefined && !view.destroyed) view.destroy();
  }

  private readonly onReadable = (): void => {
    if (this.view !== undefined) this.pump(this.view);
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    if (this.view !== undefined) this.pump(this.view);
  };

  private readonly onError = (error: Error): void => {
    // The client's upload failed (it went away, or a body limit stopped it): no attempt may
    // use this body, and the failure is the client's, never a reason to retry.
    this.failure = error instanceof SidecarError ? error : new SidecarError('BAD_REQUEST', 'the request body could not be read', { cause: error });
    if (this.view !== undefined) this.pump(this.view);
  };
}

/** One attempt's reading of a ReplayableBody. */
class BodyView extends Readable {
  /** Index of the next kept chunk this view has not pushed yet. */
  next = 0;

  constructor(private readonly body: ReplayableBody) {
    super();
  }

  override _read(): void {
    this.body.pump(this);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.body.release(this);
    callback(error);
  }
}

async function* failingBody(): AsyncGenerator<Buffer> {
  yield* [];
  throw new SidecarError('BAD_REQUEST', 'the request body can no longer be replayed');
}
