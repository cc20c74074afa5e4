import { Dispatcher, errors } from 'undici';
import type { Connector } from './connection-guard';
import { Http2Connection, type ConnectionEvents } from './http2-connection';
import { Http2Request, type UpstreamDispatchOptions } from './http2-stream';

/**
 * The HTTP/2 client of one endpoint of a `protocol: http2` cluster, in place of undici's Pool
 * (which cannot send request trailers, and holds or spreads streams in ways a proxy does not
 * want). It is a undici Dispatcher: the attempt handlers get undici's classic callbacks,
 * `request()` (the mirror's) works on it, and its `stats` have the fields the metrics read.
 *
 * Invariants:
 *  - at most `maxConnections` connections, each carrying at most
 *    min(app's SETTINGS_MAX_CONCURRENT_STREAMS, streamsPerConnection) streams;
 *  - a request goes on the first usable connection with room; a new connection is opened only
 *    when the requests waiting outnumber the room of the usable and connecting ones, so a
 *    burst dispatched in one turn opens ceil(burst / streamsPerConnection) connections;
 *  - past that the requests wait in one FIFO queue and take streams as they free up.
 */

export interface Http2PoolOptions {
  readonly connect: Connector;
  readonly maxConnections: number;
  readonly streamsPerConnection: number;
  readonly idleTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxHeaderListSize: number;
}

/** What the metrics read (undici's PoolStats has the same fields). */
export interface Http2PoolStats {
  /** Open connections (usable, or finishing their streams after GOAWAY). */
  readonly connected: number;
  /** Usable connections carrying no stream. */
  readonly free: number;
  /** Requests waiting for a stream. */
  readonly pending: number;
  /** Streams open. */
  readonly running: number;
  readonly size: number;
}

export class Http2Pool extends Dispatcher implements ConnectionEvents {
  private readonly origin: URL;
  private readonly scheme: string;
  private readonly defaultAuthority: string;
  private readonly connections: Http2Connection[] = [];
  /** Requests waiting for a stream, oldest first from `head`. */
  private queue: (Http2Request | undefined)[] = [];
  private head = 0;
  private closing = false;
  private pumping = false;
  private pumpAgain = false;
  /** The connections were told to close (once nothing waits). */
  private connectionsClosing = false;
  private destroyed = false;
  private closeWaiters: (() => void)[] = [];

  constructor(
    origin: string,
    private readonly options: Http2PoolOptions,
  ) {
    super();
    this.origin = new URL(origin);
    this.scheme = this.origin.protocol === 'https:' ? 'https' : 'http';
    this.defaultAuthority = this.origin.host;
  }

  get stats(): Http2PoolStats {
    let connected = 0;
    let free = 0;
    let running = 0;
    for (const c of this.connections) {
      running += c.active;
      if (!c.isOpen) continue;
      connected++;
      if (c.ready && c.active === 0) free++;
    }
    const pending = this.queue.length - this.head;
    return { connected, free, pending, running, size: pending + running };
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const request = new Http2Request(options as UpstreamDispatchOptions, handler);
    if (this.closing || this.destroyed) {
      request.failQueued(this.destroyed ? new errors.ClientDestroyedError() : new errors.ClientClosedError());
      return false;
    }
    this.queue.push(request);
    this.pump();
    return true;
  }

  // --- ConnectionEvents ---

  room(): void {
    this.pump();
  }

  connectFailed(connection: Http2Connection, error: Error): void {
    // The requests the other connections cannot take fail with the reason; those they can wait.
    let room = 0;
    for (const c of this.connections) if (c !== connection && (c.ready || c.connecting)) room += c.capacity - c.active;
    const waiting = this.queue.length - this.head;
    for (let i = waiting - room; i > 0; i--) this.queue.pop()?.failQueued(error);
    this.compactQueue();
  }

  unusable(): void {
    this.pump();
  }

  closed(connection: Http2Connection): void {
    const index = this.connections.indexOf(connection);
    if (index >= 0) this.connections.splice(index, 1);
    if (this.connections.length === 0 && (this.closing || this.destroyed)) this.settleClose();
    else this.pump();
  }

  // --- closing ---

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.closing = true;
    const done = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    this.closeIfIdle();
    if (callback === undefined) return done;
    void done.then(callback);
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const error = (typeof errOrCallback === 'function' ? undefined : errOrCallback) ?? new errors.ClientDestroyedError();
    const cb = typeof errOrCallback === 'function' ? errOrCallback : callback;
    this.destroyed = true;
    const done = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    for (let i = this.head; i < this.queue.length; i++) this.queue[i]?.failQueued(error);
    this.queue = [];
    this.head = 0;
    if (this.connections.length === 0) this.settleClose();
    else for (const c of [...this.connections]) c.destroy(error);
    if (cb === undefined) return done;
    void done.then(cb);
  }

  /** Closing: once nothing waits, every connection closes after its streams end. */
  private closeIfIdle(): void {
    if (!this.closing || this.connectionsClosing || this.head < this.queue.length) return;
    this.connectionsClosing = true;
    if (this.connections.length === 0) {
      this.settleClose();
      return;
    }
    for (const c of [...this.connections]) c.close();
  }

  private settleClose(): void {
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /**
   * Gives waiting requests the room there is, and opens the connections the rest need. Not
   * re-entered: a handler's callback (a failure, a retry dispatched at once) or a stream
   * closing may ask for it while it runs; it then runs once more.
   */
  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        this.pumpOnce();
      } while (this.pumpAgain);
    } finally {
      this.pumping = false;
    }
  }

  private pumpOnce(): void {
    if (this.destroyed) return;
    while (this.head < this.queue.length) {
      const connection = this.connectionWithRoom();
      if (connection === undefined) break;
      const request = this.queue[this.head]!;
      this.queue[this.head++] = undefined;
      connection.streamOpened();
      const outcome = request.start(connection, this.scheme, this.defaultAuthority);
      if (outcome === 'started') continue;
      if (outcome === 'retry-elsewhere') {
        this.queue[--this.head] = request;
        connection.destroy(new errors.SocketError('the session takes no new stream'));
      }
      connection.streamClosed();
    }
    this.compactQueue();
    if (this.head < this.queue.length) this.openConnections();
    else if (this.closing) this.closeIfIdle();
  }

  private connectionWithRoom(): Http2Connection | undefined {
    for (const c of this.connections) if (c.hasRoom) return c;
    return undefined;
  }

  /** Opens as many connections as the waiting requests need beyond the room coming (connections being opened), within maxConnections. */
  private openConnections(): void {
    const o = this.options;
    while (this.connections.length < o.maxConnections) {
      let coming = 0;
      for (const c of this.connections) if (c.connecting) coming += c.capacity;
      if (this.queue.length - this.head <= coming) return;
      const connection = new Http2Connection(
        {
          origin: this.origin,
          connect: o.connect,
          streamsPerConnection: o.streamsPerConnection,
          idleTimeoutMs: o.idleTimeoutMs,
          settingsTimeoutMs: o.connectTimeoutMs,
          maxHeaderListSize: o.maxHeaderListSize,
        },
        this,
      );
      this.connections.push(connection);
      // (A connector may fail at once: the connection then reports, and is gone, before this returns.)
      connection.open();
    }
  }

  private compactQueue(): void {
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}
