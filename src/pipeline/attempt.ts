import type { Dispatcher } from 'undici';
import { RETRY_DISCARDED_BODY_MAX_BYTES } from '../config/defaults';
import { SidecarError } from '../core/errors';
import type { ConcurrencyLimit } from '../policy/concurrency-limit';
import type { EndpointRuntime } from '../upstream/cluster';
import type { Exchange } from './exchange';
import type { ResponseTrailers } from '../proxy/headers';
import type { MultiplexedBody } from '../proxy/multiplexed-body';

const DISCARD_LIMIT = new SidecarError('UPSTREAM_RESET', 'the response replaced by a retry was too long to read to its end');
const ABANDONED_BEFORE_SENT = new SidecarError('UPSTREAM_RESET', 'the attempt was abandoned before it was sent');

/**
 * undici's handler for one attempt. It forwards to the exchange only while its attempt is the
 * current one, so a late event of an abandoned attempt can never touch the client's response.
 * Headers and failures go to the terminal (pool.ts), which reports them up the chain; body
 * bytes go straight to observe, which writes the client's response (no policy sees bytes).
 *
 * It implements undici's classic handler callbacks (onHeaders/onData/...) rather than the
 * controller-based ones: undici 7 calls the classic ones directly with the raw header buffers,
 * while the newer API would parse every response's headers into an object first.
 */
export class AttemptHandler implements Dispatcher.DispatchHandler {
  /** undici's abort for this attempt, from the moment it has a connection. */
  abort: ((reason: Error) => void) | undefined;
  /** The attempt completed or failed: nothing left to abort. */
  done = false;
  bodyBytesSent = 0;
  /** The first byte of the response arrived (undici's onResponseStarted, before the headers are complete). */
  responseStarted = false;
  /** A retry replaced this attempt after its headers: its body is read to the end and dropped. */
  private discarding = false;
  private discardedBytes = 0;

  /** Counted in the cluster's pending requests until it has a connection (or failed without one). */
  private waitingForConnection = true;

  constructor(
    private readonly exchange: Exchange,
    readonly endpoint: EndpointRuntime,
    private readonly limit: ConcurrencyLimit,
    /** The attempt's body when it is streamed over HTTP/2: released when the attempt ends. */
    private readonly body: MultiplexedBody | undefined = undefined,
  ) {
    endpoint.inFlight++;
    endpoint.requests++;
    limit.attemptQueued();
  }

  /** Drops the rest of this response; a short one is read to its end so its connection is reused. */
  discard(): void {
    this.discarding = true;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.leaveConnectionQueue();
    if (!this.exchange.isCurrent(this)) {
      // Abandoned while it waited for a connection (its client left, or the exchange answered
      // without it). undici's abort() would destroy the connection it was just given, so that
      // every abandoned attempt in the queue cost a new connection to the app. Throwing here
      // instead makes undici fail the request before writing anything, keep the connection
      // and go on with the next request in its queue (client-h1 writeH1; onError follows).
      throw ABANDONED_BEFORE_SENT;
    }
    this.abort = abort;
  }

  onResponseStarted(): void {
    this.responseStarted = true;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    const x = this.exchange;
    if (!x.isCurrent(this)) return false;
    return x.chain.terminal.onAttemptHeaders(x, this, statusCode, rawHeaders, resume, statusText);
  }

  onData(chunk: Buffer): boolean {
    if (this.discarding) {
      this.discardedBytes += chunk.length;
      if (this.discardedBytes > RETRY_DISCARDED_BODY_MAX_BYTES) this.abort?.(DISCARD_LIMIT);
      return true;
    }
    const x = this.exchange;
    if (!x.isCurrent(this)) return false;
    return x.chain.head.onData(x, chunk);
  }

  /**
   * undici 7 passes the chunk itself, although its typings say a size: adding it to a number
   * would build a string of the whole body.
   */
  onBodySent(chunk: number | Buffer | string): void {
    this.bodyBytesSent += typeof chunk === 'number' ? chunk : Buffer.byteLength(chunk);
    const x = this.exchange;
    // A retry sends the same body again: the access log counts the client's bytes once.
    if (x.isCurrent(this) && this.bodyBytesSent > x.bytesIn) x.bytesIn = this.bodyBytesSent;
  }

  /**
   * `trailers`: raw `[name, value, ...]` buffers from an HTTP/1.1 chunked response, a header
   * object from an HTTP/2 one (undici passes what each protocol gives it).
   */
  onComplete(trailers: ResponseTrailers): void {
    this.end();
    this.body?.release(undefined);
    const x = this.exchange;
    if (x.isCurrent(this)) x.chain.head.onComplete(x, trailers);
  }

  onError(error: Error): void {
    this.end();
    this.body?.release(error);
    const x = this.exchange;
    if (x.isCurrent(this)) x.chain.terminal.onAttemptError(x, this, error);
  }

  private end(): void {
    if (this.done) return;
    this.done = true;
    this.endpoint.inFlight--;
    this.leaveConnectionQueue();
  }

  private leaveConnectionQueue(): void {
    if (!this.waitingForConnection) return;
    this.waitingForConnection = false;
    this.limit.connectionReached();
  }
}
