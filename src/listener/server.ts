import http, { type ServerResponse } from 'node:http';
import type { Http2SecureServer, Http2Server } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ListenerConfig } from '../config/types';
import type { Logger } from '../telemetry/logger';
import type { RequestHandler } from './handler';
import type { ConnectHandler } from './connect-handler';
import { createH2cServer, createSecureServer, Http2Sessions, type PrematureResetClose } from './secure-server';
import { detectProtocol } from './protocol-detect';
import { ListenerTls } from './tls';
import { ClientErrorGuard } from './client-errors';
import { settlesWithin } from '../core/async';
import { timeoutCheckIntervalMs } from './timeouts';
import { http1HeaderCap } from './header-limits';
import { ListenerConnectionGuard, type ConnectionDropObserver } from './connection-guard';

/** What a listener reports for its owner to count. */
export interface ListenerEvents {
  /** A connection to an h2c listener was closed before its protocol was known: one the listener does not serve, or not enough bytes in time. */
  readonly protocolUndetected?: (outcome: 'refused' | 'timeout') => void;
  /** A connection was closed before it carried a request (per-peer limit, maxConnections, silent near capacity). */
  readonly connectionDropped?: ConnectionDropObserver;
  /** An HTTP/2 connection was closed (GOAWAY ENHANCE_YOUR_CALM) for resetting more streams than it completed. */
  readonly http2PrematureResetClose?: (facts: PrematureResetClose) => void;
}

/**
 * One listening socket and the HTTP server on it. Parser and timeout limits come from the
 * listener config; malformed requests are answered with the sidecar's own 4xx and the
 * connection is closed, so no client input can throw past this point.
 *
 * With `tls`, the server speaks HTTP/2 and HTTP/1.1 over TLS (chosen by ALPN) and owns its
 * certificates: they are read when the listener is built (a bad file throws before anything
 * binds), reloaded when the files change, and the watcher stops when the listener closes.
 */
export class ListenerServer {
  private currentConfig: ListenerConfig;
  readonly server: http.Server | Http2SecureServer;
  /** Certificates and their reload; undefined for a plain HTTP listener. */
  readonly tls: ListenerTls | undefined;
  private readonly sessions: Http2Sessions | undefined;
  /** The HTTP/2 server behind a plain listener with h2c (it never listens itself). */
  private h2c: Http2Server | undefined;
  /** Open client connections (TCP sockets) and when each was accepted (Date.now()), in accept order. */
  private readonly sockets = new Map<Socket, number>();
  private readonly connectionGuard: ListenerConnectionGuard;
  /** The response each connection is writing or wrote last: HTTP/1.1 answers one request at a time per connection. */
  private readonly responses = new Map<Socket, ServerResponse>();
  private handler: RequestHandler;
  private readonly sweepScheduled = new WeakSet<ServerResponse>();
  private draining: Promise<DrainResult> | undefined;

  /**
   * A `server` passed in keeps the handler it was built with: update() and setHandler() reach
   * only servers built here. `events` hears of what the listener refuses or closes on its own.
   */
  constructor(config: ListenerConfig, handler: RequestHandler, logger: Logger, server?: http.Server, events: ListenerEvents = {}) {
    this.currentConfig = config;
    this.handler = handler;
    const guard = new ClientErrorGuard();
    // One 'request' listener does the per-request bookkeeping and calls the handler: each
    // listener more is an emit step and, for once(), a closure on every request.
    const dispatch: RequestHandler = (req, res) => {
      if (req.httpVersionMajor === 1) this.trackHttp1(req, res, guard);
      this.handler(req, res);
    };
    const onPrematureResetClose = (facts: PrematureResetClose): void => {
      logger.warn(
        { listener: config.name, remoteAddress: facts.remoteAddress, prematureResets: facts.prematureResets, streams: facts.streams },
        'HTTP/2 connection closed with GOAWAY ENHANCE_YOUR_CALM: the client reset more streams than it completed (rapid reset)',
      );
      events.http2PrematureResetClose?.(facts);
    };
    if (server === undefined && config.tls !== undefined) {
      this.tls = new ListenerTls(config.name, config.tls, logger);
      const secure = createSecureServer(config, this.tls.provider, dispatch);
      this.sessions = new Http2Sessions(secure, () => this.config, onPrematureResetClose);
      // Handshake failures (no client certificate, an unsupported protocol version, a
      // scanner) end the connection: there is no HTTP exchange to answer yet.
      secure.removeAllListeners('tlsClientError');
      secure.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
        logger.debug({ listener: config.name, err: error.code ?? error.message }, 'TLS handshake failed');
        socket.destroy();
      });
      this.server = secure;
    } else {
      this.server =
        server ??
        http.createServer(
          {
            maxHeaderSize: config.maxHeaderBytes,
            headersTimeout: config.headersTimeoutMs,
            requestTimeout: config.requestTimeoutMs,
            keepAliveTimeout: config.keepAliveTimeoutMs,
            // Each chunk of a stream leaves as soon as it is written (no Nagle delay).
            noDelay: true,
            connectionsCheckingInterval: timeoutCheckIntervalMs(config),
            // The request guard answers a missing Host with the sidecar's own 400 (x-sidecar-error).
            requireHostHeader: false,
          },
          dispatch,
        );
      if (server === undefined && config.protocols.includes('h2c')) this.sessions = this.serveH2c(this.server, config, dispatch, events, onPrematureResetClose);
    }
    if (this.server instanceof http.Server) this.server.maxHeadersCount = http1HeaderCap(config);
    this.server.maxConnections = config.maxConnections;
    this.connectionGuard = new ListenerConnectionGuard(this.sockets, () => this.currentConfig, events.connectionDropped ?? (() => {}));
    this.connectionGuard.attach(this.server);
    // First in line: a refused connection is destroyed before Node sets up HTTP or TLS on it.
    this.server.prependListener('connection', (socket: Socket) => {
      this.sockets.set(socket, Date.now());
      socket.once('close', () => this.sockets.delete(socket));
      this.connectionGuard.admit(socket);
    });
    // A server built elsewhere has its handler already: the bookkeeping goes first in line.
    if (server !== undefined) {
      server.prependListener('request', (req: http.IncomingMessage, res: ServerResponse) => {
        if (req.httpVersionMajor === 1) this.trackHttp1(req, res, guard);
      });
    }
    guard.attach(this.server);
    this.server.on('error', (error: Error) => logger.error({ err: error, listener: config.name }, 'listener error'));
  }

  /**
   * CONNECT requests of every protocol the listener serves: node:http's (HTTP/1.1, the
   * connection handed over) and node:http2's (one stream), on the TLS server and on the h2c
   * server alike. Without a handler node:http2 answers 405 itself, and an HTTP/2 TLS server
   * would hand an HTTP/2 CONNECT to a handler written for sockets.
   */
  onConnect(handler: ConnectHandler): void {
    this.server.on('connect', handler);
    this.h2c?.on('connect', handler);
  }

  /**
   * Plain HTTP/1.1 and HTTP/2 with prior knowledge on one port: Node's HTTP/1 connection
   * handler is taken off the server and called only for connections whose first bytes are not
   * the HTTP/2 preface; those that are go to an HTTP/2 server that never listens itself. The
   * listener's own 'connection' bookkeeping (limits, drain) still sees every connection first.
   */
  private serveH2c(
    server: http.Server,
    config: ListenerConfig,
    dispatch: RequestHandler,
    events: ListenerEvents,
    onPrematureResetClose: (facts: PrematureResetClose) => void,
  ): Http2Sessions {
    const h2c = createH2cServer(config, dispatch);
    this.h2c = h2c;
    const sessions = new Http2Sessions(h2c, () => this.config, onPrematureResetClose);
    const http1 = server.listeners('connection') as ((socket: Socket) => void)[];
    server.removeAllListeners('connection');
    const protocols = { http1: config.protocols.includes('http1'), h2c: true };
    const routes = {
      http1: (socket: Socket) => {
        for (const listener of http1) listener.call(server, socket);
      },
      h2c: (socket: Socket) => h2c.emit('connection', socket),
      closed: events.protocolUndetected,
    };
    server.on('connection', (socket: Socket) => {
      if (!socket.destroyed) detectProtocol(socket, protocols, this.currentConfig.headersTimeoutMs, routes);
    });
    return sessions;
  }

  /**
   * Before the handler writes anything: a request arriving on a kept-alive connection while
   * the listener drains is still served, but told to close the connection. (HTTP/1 only: an
   * HTTP/2 session is closed with GOAWAY, and `Connection` is illegal there.)
   */
  private trackHttp1(req: http.IncomingMessage, res: ServerResponse, guard: ClientErrorGuard): void {
    // Keyed by req.socket: for TLS that is the TLSSocket, not the TCP socket of 'connection'.
    const socket = req.socket;
    if (!this.responses.has(socket)) socket.once('close', () => this.responses.delete(socket));
    this.responses.set(socket, res);
    if (this.draining !== undefined) res.setHeader('connection', 'close');
    guard.track(req, res);
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(new Error(`listener ${this.config.name} cannot bind ${this.config.host}:${this.config.port}: ${error.message}`, { cause: error }));
      this.server.once('error', onError);
      this.server.listen({ host: this.config.host, port: this.config.port, backlog: 4096 }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  get config(): ListenerConfig {
    return this.currentConfig;
  }

  /**
   * A reload changed settings a bound server can take (see LISTENER_FIELDS_APPLIED_IN_PLACE):
   * later requests use the new handler, Node reads the new limits on their next use.
   */
  update(config: ListenerConfig, handler: RequestHandler): void {
    this.currentConfig = config;
    this.handler = handler;
    this.server.maxConnections = config.maxConnections;
    if (this.server instanceof http.Server) {
      this.server.headersTimeout = config.headersTimeoutMs;
      this.server.requestTimeout = config.requestTimeoutMs;
      this.server.keepAliveTimeout = config.keepAliveTimeoutMs;
    }
  }

  /** Answers the requests that still arrive on open connections, e.g. with 503 DRAINING once the listener is removed. */
  setHandler(handler: RequestHandler): void {
    this.handler = handler;
  }

  /** The bound port (useful when the config says port 0). */
  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address !== null ? address.port : this.config.port;
  }

  get connections(): number {
    return this.sockets.size;
  }

  /** Stops accepting, closes idle keep-alive connections and waits for requests in flight. */
  async close(): Promise<void> {
    await this.drain(Number.POSITIVE_INFINITY);
  }

  /**
   * Graceful stop: no new connections (they are refused at TCP level from here on); responses
   * not yet started carry `Connection: close`; connections close as soon as they are idle;
   * at `deadline` (epoch ms) the connections still busy are cut. Idempotent.
   */
  drain(deadline: number): Promise<DrainResult> {
    this.draining ??= this.runDrain(deadline);
    return this.draining;
  }

  private async runDrain(deadline: number): Promise<DrainResult> {
    this.tls?.close();
    this.connectionGuard.stop();
    const server = this.server;
    // Node's close() also closes the idle connections once; ours spares responses still flushing.
    if (server instanceof http.Server) server.closeIdleConnections = () => this.closeIdleConnections();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // HTTP/2 sessions get GOAWAY: streams in flight finish, no new ones start.
    this.sessions?.close();
    for (const res of this.responses.values()) {
      if (res.writableFinished) continue;
      if (!res.headersSent) res.setHeader('connection', 'close');
      // Its headers already went out without `Connection: close`: close the connection as
      // soon as this response is complete, unless the client already sent its next request
      // (that one is answered with `Connection: close`).
      else this.sweepAfter(res);
    }
    const connectionsAtStart = this.sockets.size;
    if (!Number.isFinite(deadline)) {
      await closed;
      return { connectionsAtStart, cut: 0 };
    }
    const timedOut = !(await settlesWithin(closed, deadline - Date.now()));
    let cut = 0;
    if (timedOut) {
      cut = this.sockets.size;
      for (const socket of this.sockets.keys()) socket.destroy();
      await closed;
    }
    return { connectionsAtStart, cut };
  }

  /**
   * Node's closeIdleConnections, minus one case: it treats a connection whose response has
   * ended as idle even while the response's last bytes still wait in the socket's buffer,
   * and destroying the socket then truncates that response. Those sockets are left alone
   * here; their 'finish' (all bytes handed to the kernel) comes shortly, and a later sweep
   * (or `Connection: close`) ends them.
   */
  private closeIdleConnections(): void {
    const flushing: Socket[] = [];
    for (const [socket, res] of this.responses) if (res.writableEnded && !res.writableFinished) flushing.push(socket);
    const destroy = flushing.map((socket) => socket.destroy);
    // The sweep is synchronous: the sockets are only shielded for its duration.
    for (const socket of flushing) socket.destroy = () => socket;
    try {
      if (this.server instanceof http.Server) http.Server.prototype.closeIdleConnections.call(this.server);
    } finally {
      flushing.forEach((socket, i) => (socket.destroy = destroy[i]));
    }
    for (const socket of flushing) this.sweepAfter(this.responses.get(socket) as ServerResponse);
  }

  /** Sweeps idle connections again once `res` is complete (once per response, however often asked). */
  private sweepAfter(res: ServerResponse): void {
    if (this.sweepScheduled.has(res)) return;
    this.sweepScheduled.add(res);
    res.once('finish', () => setImmediate(() => this.closeIdleConnections()));
  }

  /** Cuts every connection at once. */
  destroy(): void {
    this.tls?.close();
    this.connectionGuard.stop();
    this.server.close();
    this.sessions?.destroy();
    for (const socket of this.sockets.keys()) socket.destroy();
  }
}

export interface DrainResult {
  /** Connections open when the drain began (after idle ones were closed). */
  readonly connectionsAtStart: number;
  /** Connections still busy at the deadline, cut. */
  readonly cut: number;
}
