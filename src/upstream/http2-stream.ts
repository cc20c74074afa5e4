import { constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { errors, type Dispatcher } from 'undici';
import { http2RequestHeaders, rawResponseHeaders, trailersToSend, type DispatchedHeaders, type RequestTrailers } from './http2-headers';

/**
 * One request of the HTTP/2 client (http2-pool.ts) from the moment it has a stream: the request
 * headers, body and trailers out, the response back to its handler with undici's classic
 * callbacks (onConnect, onHeaders, onData, onComplete, onError), and how it fails.
 */

/** undici's dispatch options, with what the HTTP/2 client reads beyond them. */
export interface UpstreamDispatchOptions extends Dispatcher.DispatchOptions {
  /**
   * The client's request trailers, read once the body has been sent (HTTP/2 clusters: they
   * follow the body to the app; undici's HTTP/1 client ignores the field).
   */
  readonly requestTrailers?: () => RequestTrailers | undefined;
}

/**
 * A stream the app did not process: above the last stream id of its GOAWAY, or refused with
 * REFUSED_STREAM. RFC 9113 §8.7: such a request can be sent again, whatever its method.
 */
export class UnprocessedStreamError extends Error {
  readonly code = 'SIDECAR_H2_UNPROCESSED_STREAM';
  constructor(message: string) {
    super(message);
    this.name = 'UnprocessedStreamError';
  }
}

/** What a request stream needs of its connection. */
export interface StreamOwner {
  readonly session: ClientHttp2Session;
  /** The last stream id of the app's GOAWAY; undefined until it sends one. */
  readonly goawayLastStreamId: number | undefined;
  /** The largest response header list accepted (name + value + 32 per field, as HTTP/2 counts it). */
  readonly maxHeaderListSize: number;
  /** Why the connection failed, if it did (its streams fail with it). */
  readonly failure: Error | undefined;
  /** The stream closed: its slot is free. */
  streamClosed(): void;
}

type Handler = Dispatcher.DispatchHandler;

/** A Blob-like body (proxy/multiplexed-body.ts): its `stream()` gives the chunks, or promises of them. */
interface ChunkSource {
  stream(): Iterable<Promise<Buffer> | Buffer> | AsyncIterable<Buffer>;
}

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_ENHANCE_YOUR_CALM } = constants;

/** A request waiting for a stream, then running on one. */
export class Http2Request {
  private stream: ClientHttp2Stream | undefined;
  private owner: StreamOwner | undefined;
  /** The handler was told how the request ended (onComplete or onError): nothing more reaches it. */
  private settled = false;
  private responded = false;
  private paused = false;
  private responseTrailers: IncomingHttpHeaders | undefined;
  private bodyTimer: NodeJS.Timeout | undefined;
  private readonly bodyTimeoutMs: number;

  constructor(
    readonly options: UpstreamDispatchOptions,
    private readonly handler: Handler,
  ) {
    const timeout = options.bodyTimeout;
    this.bodyTimeoutMs = typeof timeout === 'number' && timeout > 0 ? timeout : 0;
  }

  /** Fails the request before it has a stream (a connect failure, the pool closing). */
  failQueued(error: Error): void {
    this.settle(error);
  }

  /**
   * Sends the request on a stream of `owner`'s session. False when it was not sent: its handler
   * refused it (onConnect threw: an attempt abandoned while it waited) or the session could
   * not open a stream; the request has then failed, except for `retryElsewhere`.
   */
  start(owner: StreamOwner, scheme: string, defaultAuthority: string): 'started' | 'failed' | 'retry-elsewhere' {
    try {
      this.handler.onConnect?.(this.abort);
    } catch (error) {
      this.settle(asError(error));
      return 'failed';
    }
    if (this.settled) return 'failed';
    const o = this.options;
    const body = o.body ?? null;
    const whole = typeof body === 'string' ? Buffer.from(body) : body instanceof Uint8Array ? body : undefined;
    // A whole body (or none) knows its trailers now; a streamed one once it has been read.
    const trailers = body === null || whole !== undefined ? trailersToSend(o.requestTrailers?.()) : undefined;
    const waitForTrailers = whole === undefined ? body !== null && o.requestTrailers !== undefined : trailers !== undefined;
    let stream: ClientHttp2Stream;
    try {
      const headers = http2RequestHeaders(o.headers as DispatchedHeaders, o.method, o.path, scheme, defaultAuthority);
      stream = owner.session.request(headers, { endStream: body === null, waitForTrailers });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // The session went away between the pick and the request (GOAWAY being processed) or ran
      // out of stream ids: another connection takes it.
      if (code === 'ERR_HTTP2_GOAWAY_SESSION' || code === 'ERR_HTTP2_INVALID_SESSION' || code === 'ERR_HTTP2_OUT_OF_STREAMS') return 'retry-elsewhere';
      this.settle(asError(error));
      return 'failed';
    }
    this.stream = stream;
    this.owner = owner;
    stream.on('response', this.onResponse);
    stream.on('data', this.onData);
    stream.on('trailers', this.onTrailers);
    stream.on('end', this.onEnd);
    stream.on('error', noop); // the failure is read in onClose (the stream's or the session's)
    stream.on('close', this.onClose);
    if (waitForTrailers) stream.on('wantTrailers', () => this.sendTrailers(stream, trailers));
    if (whole !== undefined) {
      stream.end(whole);
      this.handler.onBodySent?.(whole.byteLength, whole.byteLength);
    } else if (body !== null) {
      void this.writeBody(stream, body);
    }
    return 'started';
  }

  /** undici's abort, handed to onConnect: cancels the stream (RST_STREAM CANCEL) and fails the request with `reason`. */
  private readonly abort = (reason?: Error): void => {
    if (this.settled) return;
    this.settle(reason ?? new errors.RequestAbortedError());
    this.cancel();
  };

  private cancel(): void {
    const stream = this.stream;
    if (stream !== undefined && !stream.closed && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
  }

  /** The body, written as the stream's buffer takes it (an iterable, an async iterable or a stream). */
  private async writeBody(stream: ClientHttp2Stream, body: NonNullable<Dispatcher.DispatchOptions['body']>): Promise<void> {
    const source: Iterable<Promise<Buffer> | Buffer> | AsyncIterable<Buffer> = isChunkSource(body) ? body.stream() : (body as unknown as AsyncIterable<Buffer>);
    let sent = 0;
    try {
      if (Symbol.asyncIterator in source) {
        for await (const chunk of source) {
          if (!(await this.write(stream, chunk))) return;
          sent += chunk.length;
          this.handler.onBodySent?.(chunk.length, sent);
        }
      } else {
        for (const item of source) {
          const chunk = await item;
          if (!(await this.write(stream, chunk))) return;
          sent += chunk.length;
          this.handler.onBodySent?.(chunk.length, sent);
        }
      }
    } catch (error) {
      // The client's body failed (or the attempt ended, which rejects the read pending).
      if (!this.settled) {
        this.settle(asError(error));
        this.cancel();
      }
      return;
    }
    if (!this.settled && !stream.destroyed) stream.end();
  }

  /** Writes one chunk; resolves once the stream's buffer has room again, false when the stream is gone. */
  private write(stream: ClientHttp2Stream, chunk: Buffer): Promise<boolean> | boolean {
    if (this.settled || stream.destroyed || stream.writableEnded) return false;
    if (chunk.length === 0 || stream.write(chunk)) return true;
    return new Promise<boolean>((resolve) => {
      const done = (): void => {
        stream.off('drain', done);
        stream.off('close', done);
        resolve(!this.settled && !stream.destroyed);
      };
      stream.on('drain', done);
      stream.on('close', done);
    });
  }

  private sendTrailers(stream: ClientHttp2Stream, known: OutgoingHttpHeaders | undefined): void {
    if (stream.destroyed) return;
    const trailers = known ?? trailersToSend(this.options.requestTrailers?.());
    try {
      // No trailers: an empty DATA frame with END_STREAM (node sends that for an empty list).
      stream.sendTrailers(trailers ?? {});
    } catch {
      // A field node:http2 refuses (an invalid value): the request still ends, without trailers.
      if (!stream.destroyed) stream.sendTrailers({});
    }
  }

  private readonly onResponse = (headers: IncomingHttpHeaders): void => {
    if (this.settled) return;
    // Measured for every response: node:http2 did not refuse a header list over the
    // SETTINGS_MAX_HEADER_LIST_SIZE it announced, not even after the app acknowledged it
    // (tried: checking only while `pendingSettingsAck` let an oversized response through).
    if (headerListSize(headers) > this.owner!.maxHeaderListSize) {
      this.abort(new errors.HeadersOverflowError());
      return;
    }
    this.responded = true;
    const handler = this.handler;
    handler.onResponseStarted?.();
    this.armBodyTimer();
    if (handler.onHeaders?.(Number(headers[':status']), rawResponseHeaders(headers), this.resume, '') === false) this.pause();
  };

  private readonly onData = (chunk: Buffer): void => {
    if (this.settled) return;
    this.bodyTimer?.refresh();
    if (this.handler.onData?.(chunk) === false) this.pause();
  };

  private pause(): void {
    if (this.settled || this.paused) return;
    this.paused = true;
    this.stream?.pause();
    // Silence while the client is the one not reading is no failure of the app.
    this.clearBodyTimer();
  }

  private readonly resume = (): void => {
    if (this.settled || !this.paused) return;
    this.paused = false;
    this.armBodyTimer();
    this.stream?.resume();
  };

  private readonly onTrailers = (trailers: IncomingHttpHeaders): void => {
    this.responseTrailers = trailers;
  };

  private readonly onEnd = (): void => {
    if (this.settled) return;
    if (!this.responded) return; // ended without a response: onClose fails it
    this.settled = true;
    this.clearBodyTimer();
    const stream = this.stream;
    // Answered before the whole body was sent: the rest is not wanted.
    if (stream !== undefined && !stream.writableFinished) stream.close(NGHTTP2_CANCEL);
    // (undici's typings say a list; its HTTP/2 client passes a header object, as here.)
    this.handler.onComplete?.((this.responseTrailers ?? {}) as unknown as string[]);
  };

  private readonly onClose = (): void => {
    this.clearBodyTimer();
    const owner = this.owner!;
    owner.streamClosed();
    if (this.settled) return;
    this.settle(this.closeFailure(owner, this.stream!));
  };

  /** Why a stream closed before its response ended. */
  private closeFailure(owner: StreamOwner, stream: ClientHttp2Stream): Error {
    const lastStreamId = owner.goawayLastStreamId;
    if (!this.responded) {
      if (stream.rstCode === NGHTTP2_REFUSED_STREAM) return new UnprocessedStreamError('the app refused the stream (REFUSED_STREAM): it did not process the request');
      if (lastStreamId !== undefined && stream.id !== undefined && stream.id > lastStreamId) {
        return new UnprocessedStreamError(`the app closed the connection (GOAWAY, last stream ${lastStreamId}) before it processed stream ${stream.id}`);
      }
      // node:http2 resets a stream whose response header list is over maxHeaderListSize with
      // ENHANCE_YOUR_CALM: as undici's HTTP/1 parser's overflow.
      if (stream.rstCode === NGHTTP2_ENHANCE_YOUR_CALM && owner.failure === undefined) return new errors.HeadersOverflowError();
    }
    if (owner.failure !== undefined) return owner.failure;
    if (stream.rstCode !== undefined && stream.rstCode !== constants.NGHTTP2_NO_ERROR) {
      return new errors.SocketError(`the app reset the stream (HTTP/2 error code ${stream.rstCode})`);
    }
    return new errors.SocketError(this.responded ? 'the stream closed before the response was complete' : 'the stream closed before a response');
  }

  private armBodyTimer(): void {
    if (this.bodyTimeoutMs === 0) return;
    if (this.bodyTimer !== undefined) this.bodyTimer.refresh();
    else this.bodyTimer = setTimeout(bodyTimedOut, this.bodyTimeoutMs, this);
  }

  private clearBodyTimer(): void {
    if (this.bodyTimer === undefined) return;
    clearTimeout(this.bodyTimer);
    this.bodyTimer = undefined;
  }

  /** @internal the response was silent for bodyTimeout. */
  bodyTimedOut(): void {
    this.bodyTimer = undefined;
    this.abort(new errors.BodyTimeoutError());
  }

  private settle(error: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.clearBodyTimer();
    this.handler.onError?.(error);
  }
}

function bodyTimedOut(request: Http2Request): void {
  request.bodyTimedOut();
}

/** The size of a header list as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113 §6.5.2). */
function headerListSize(headers: IncomingHttpHeaders): number {
  let size = 0;
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) size += name.length + v.length + 32;
    // (`:status` comes as a number.)
    else size += name.length + String(value).length + 32;
  }
  return size;
}

function isChunkSource(body: unknown): body is ChunkSource {
  return typeof body === 'object' && body !== null && typeof (body as { stream?: unknown }).stream === 'function' && !(Symbol.asyncIterator in body);
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

function noop(): void {}
