import http2, { type ClientHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { errors } from 'undici';
import { SidecarError } from '../core/errors';
import type { Connector } from './connection-guard';
import type { StreamOwner } from './http2-stream';

/**
 * One HTTP/2 connection of the client (http2-pool.ts): the socket from the endpoint's connector
 * (connect timeout, resolved address, the cluster's TLS), the session on it, and how many
 * streams it may carry. It is usable once the app's first SETTINGS arrived (so that its
 * SETTINGS_MAX_CONCURRENT_STREAMS is known before any stream counts on it), until the app sends
 * GOAWAY or the connection fails or idles out.
 */

export interface ConnectionSettings {
  readonly origin: URL;
  readonly connect: Connector;
  /** Streams one connection carries at most; fewer when the app's SETTINGS_MAX_CONCURRENT_STREAMS says so. */
  readonly streamsPerConnection: number;
  /** A connection that carries nothing for this long is closed. */
  readonly idleTimeoutMs: number;
  /** Time to the app's first SETTINGS once the socket is connected (the connect timeout again). */
  readonly settingsTimeoutMs: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE: a larger response header block fails its stream. */
  readonly maxHeaderListSize: number;
}

/** What a connection tells its pool. */
export interface ConnectionEvents {
  /** Usable now, or it can take more streams (SETTINGS, a stream closed). */
  room(connection: Http2Connection): void;
  /** It failed before it was usable; `error` says why. */
  connectFailed(connection: Http2Connection, error: Error): void;
  /** It takes no new stream any more (GOAWAY, failure, idle close). */
  unusable(connection: Http2Connection): void;
  /** It is gone (its streams have all closed). */
  closed(connection: Http2Connection): void;
}

type State = 'connecting' | 'ready' | 'draining' | 'closed';

export class Http2Connection implements StreamOwner {
  private state: State = 'connecting';
  private sessionOrUndefined: ClientHttp2Session | undefined;
  /** Streams open on the session. */
  active = 0;
  goawayLastStreamId: number | undefined;
  failure: Error | undefined;
  private peerLimit: number;
  private idleTimer: NodeJS.Timeout | undefined;
  private settingsTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly settings: ConnectionSettings,
    private readonly events: ConnectionEvents,
  ) {
    this.peerLimit = settings.streamsPerConnection;
  }

  get maxHeaderListSize(): number {
    return this.settings.maxHeaderListSize;
  }

  get session(): ClientHttp2Session {
    return this.sessionOrUndefined!;
  }

  get ready(): boolean {
    return this.state === 'ready';
  }

  /** Connected: usable, or finishing its streams. */
  get isOpen(): boolean {
    return this.state === 'ready' || this.state === 'draining';
  }

  get connecting(): boolean {
    return this.state === 'connecting';
  }

  /** Streams it may carry at once: the pool's bound, or the app's if lower. */
  get capacity(): number {
    return Math.min(this.settings.streamsPerConnection, this.peerLimit);
  }

  /** Takes another stream now. */
  get hasRoom(): boolean {
    return this.state === 'ready' && this.active < this.capacity;
  }

  /** A stream was opened on it. */
  streamOpened(): void {
    if (this.active++ === 0) {
      this.clearIdleTimer();
      this.sessionOrUndefined?.ref();
    }
  }

  streamClosed(): void {
    this.active--;
    if (this.active === 0) {
      if (this.state === 'draining') {
        this.sessionOrUndefined?.close();
        return;
      }
      this.sessionOrUndefined?.unref();
      if (this.state === 'ready') this.armIdleTimer();
    }
    if (this.state === 'ready') this.events.room(this);
  }

  /** Stops taking streams and closes once those running have ended (the pool closing). */
  close(): void {
    if (this.state === 'closed') return;
    if (this.state === 'connecting') {
      this.destroy(new errors.ClientClosedError());
      return;
    }
    this.drain();
  }

  /** Closes now; its streams fail with `error`. */
  destroy(error: Error): void {
    if (this.state === 'closed') return;
    this.failure ??= error;
    const session = this.sessionOrUndefined;
    if (session !== undefined) session.destroy();
    else this.finish();
  }

  /** Opens the socket and the session; the events tell how it went. */
  open(): void {
    const url = this.settings.origin;
    // IPv6 literals come bracketed in URL.hostname; connectors want the address.
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = url.port === '' ? (url.protocol === 'https:' ? '443' : '80') : url.port;
    this.settings.connect({ hostname, host: url.host, protocol: url.protocol, port, servername: undefined, localAddress: null, httpSocket: undefined }, (error, socket) => {
      // (undici's callback type is a union of two signatures; on a failure the socket is undefined.)
      if (error !== null && error !== undefined) {
        this.failBeforeReady(error);
        return;
      }
      this.onSocket(socket as Socket);
    });
  }

  private onSocket(socket: Socket): void {
    if (this.state !== 'connecting') {
      socket.destroy();
      return;
    }
    const url = this.settings.origin;
    if (url.protocol === 'https:' && (socket as TLSSocket).alpnProtocol !== 'h2') {
      const negotiated = (socket as TLSSocket).alpnProtocol;
      socket.destroy();
      this.failBeforeReady(
        new SidecarError('UPSTREAM_PROTOCOL_ERROR', `the app did not negotiate HTTP/2 by ALPN (${negotiated === false || negotiated === undefined ? 'no protocol' : negotiated}); the cluster has protocol: http2`),
      );
      return;
    }
    const session = http2.connect(url, {
      createConnection: () => socket,
      settings: { enablePush: false, maxHeaderListSize: this.settings.maxHeaderListSize },
    });
    this.sessionOrUndefined = session;
    session.unref();
    session.on('error', this.onError);
    session.once('remoteSettings', this.onFirstSettings);
    session.on('goaway', this.onGoaway);
    session.on('close', this.onClose);
    this.settingsTimer = setTimeout(settingsTimedOut, this.settings.settingsTimeoutMs, this);
    this.settingsTimer.unref();
  }

  private readonly onFirstSettings = (): void => {
    this.clearSettingsTimer();
    const session = this.session;
    session.on('remoteSettings', this.onSettings);
    if (this.state !== 'connecting') return;
    this.state = 'ready';
    this.onSettings();
    if (this.active === 0) this.armIdleTimer();
  };

  private readonly onSettings = (): void => {
    const limit = this.sessionOrUndefined?.remoteSettings.maxConcurrentStreams;
    // SETTINGS_MAX_CONCURRENT_STREAMS 0 is legal (the app takes no stream for now): the requests wait.
    this.peerLimit = limit === undefined ? this.settings.streamsPerConnection : limit;
    if (this.state === 'ready') this.events.room(this);
  };

  /** @internal the app sent no SETTINGS within the connect timeout. */
  settingsTimedOut(): void {
    this.settingsTimer = undefined;
    if (this.state === 'connecting') this.failBeforeReady(new errors.ConnectTimeoutError('the app sent no HTTP/2 SETTINGS within the connect timeout'));
  }

  /**
   * GOAWAY: streams above its last stream id were not processed (they fail as such, see
   * http2-stream.ts); those below finish, and the connection takes no new one.
   */
  private readonly onGoaway = (_code: number, lastStreamId: number): void => {
    this.goawayLastStreamId = this.goawayLastStreamId === undefined ? lastStreamId : Math.min(this.goawayLastStreamId, lastStreamId);
    this.drain();
  };

  private readonly onError = (error: Error): void => {
    this.failure ??= error;
  };

  private readonly onClose = (): void => {
    if (this.state === 'connecting') {
      this.clearSettingsTimer();
      this.failure ??= new errors.SocketError('the app closed the connection before its HTTP/2 SETTINGS');
      this.state = 'closed';
      this.clearIdleTimer();
      this.events.connectFailed(this, this.failure);
      this.events.closed(this);
      return;
    }
    this.finish();
  };

  /** Fails while connecting: the socket, TLS, ALPN or the wait for SETTINGS. */
  private failBeforeReady(error: Error): void {
    if (this.state !== 'connecting') return;
    this.failure ??= error;
    const session = this.sessionOrUndefined;
    if (session !== undefined) {
      session.destroy(); // 'close' reports the failure
      return;
    }
    this.state = 'closed';
    this.events.connectFailed(this, error);
    this.events.closed(this);
  }

  /** Takes no new stream; the session closes once its streams have ended. */
  private drain(): void {
    if (this.state !== 'ready' && this.state !== 'connecting') return;
    this.state = 'draining';
    this.clearIdleTimer();
    this.events.unusable(this);
    if (this.active === 0) this.sessionOrUndefined?.close();
  }

  private finish(): void {
    if (this.state === 'closed') return;
    const wasUsable = this.state === 'ready';
    this.state = 'closed';
    this.clearIdleTimer();
    this.clearSettingsTimer();
    if (wasUsable) this.events.unusable(this);
    this.events.closed(this);
  }

  private armIdleTimer(): void {
    if (this.settings.idleTimeoutMs <= 0) return;
    if (this.idleTimer !== undefined) {
      this.idleTimer.refresh();
      return;
    }
    this.idleTimer = setTimeout(idledOut, this.settings.idleTimeoutMs, this);
    this.idleTimer.unref();
  }

  private clearIdleTimer(): void {
    if (this.idleTimer === undefined) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private clearSettingsTimer(): void {
    if (this.settingsTimer === undefined) return;
    clearTimeout(this.settingsTimer);
    this.settingsTimer = undefined;
  }

  /** @internal nothing ran on it for idleTimeoutMs. */
  idledOut(): void {
    this.idleTimer = undefined;
    if (this.state !== 'ready' || this.active > 0) return;
    this.drain();
  }
}

function settingsTimedOut(connection: Http2Connection): void {
  connection.settingsTimedOut();
}

function idledOut(connection: Http2Connection): void {
  connection.idledOut();
}
