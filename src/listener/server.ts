import http from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { randomUUID } from 'node:crypto';
import type { ListenerConfig } from '../config/types';
import { ERROR_MESSAGES, ERROR_STATUS, errorBody, type ErrorCode } from '../errors';
import type { Logger } from '../telemetry/logger';
import type { RequestHandler } from '../proxy/handler';
import { createSecureServer, Http2Sessions } from './secure-server';
import { ListenerTls } from './tls';

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
  readonly config: ListenerConfig;
  readonly server: http.Server | Http2SecureServer;
  /** Certificates and their reload; undefined for a plain HTTP listener. */
  readonly tls: ListenerTls | undefined;
  private readonly sessions: Http2Sessions | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(config: ListenerConfig, handler: RequestHandler, logger: Logger, server?: http.Server) {
    this.config = config;
    if (server === undefined && config.tls !== undefined) {
      this.tls = new ListenerTls(config.name, config.tls, logger);
      const secure = createSecureServer(config, this.tls.provider, handler);
      this.sessions = new Http2Sessions(secure, () => this.config);
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
          },
          handler,
        );
    }
    this.server.maxConnections = config.maxConnections;
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => answerClientError(error, socket));
    this.server.on('error', (error: Error) => logger.error({ err: error, listener: config.name }, 'listener error'));
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

  /** The bound port (useful when the config says port 0). */
  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address !== null ? address.port : this.config.port;
  }

  get connections(): number {
    return this.sockets.size;
  }

  /**
   * Stops accepting, closes idle keep-alive connections (HTTP/2: GOAWAY) and waits for
   * requests in flight.
   */
  close(): Promise<void> {
    this.tls?.close();
    return new Promise((resolve) => {
      // An Http2SecureServer's close() closes its idle HTTP/1.1 connections itself.
      this.server.close(() => resolve());
      if (this.server instanceof http.Server) this.server.closeIdleConnections();
      this.sessions?.close();
    });
  }

  /** Cuts every connection at once. */
  destroy(): void {
    this.tls?.close();
    this.server.close();
    this.sessions?.destroy();
    for (const socket of this.sockets) socket.destroy();
  }
}

const CLIENT_ERRORS: Readonly<Record<string, { reason: string; code: ErrorCode }>> = {
  HPE_HEADER_OVERFLOW: { reason: 'Request Header Fields Too Large', code: 'HEADERS_TOO_LARGE' },
  ERR_HTTP_REQUEST_TIMEOUT: { reason: 'Request Timeout', code: 'REQUEST_TIMEOUT' },
};

/**
 * Node calls this for requests its parser rejects (smuggling attempts, bad chunk sizes,
 * oversized headers, timeouts). The connection is never reused afterwards.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || !socket.writable || socket.bytesWritten > 0) {
    socket.destroy();
    return;
  }
  const known = CLIENT_ERRORS[error.code ?? ''];
  const code = known?.code ?? 'BAD_REQUEST';
  const status = ERROR_STATUS[code];
  const reason = known?.reason ?? 'Bad Request';
  const requestId = randomUUID();
  const body = errorBody(code, `${ERROR_MESSAGES[code]} (${error.code ?? error.message})`, requestId);
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n` +
      'content-type: application/json\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      `x-sidecar-error: ${code}\r\n` +
      `x-request-id: ${requestId}\r\n` +
      'connection: close\r\n\r\n' +
      body,
  );
}
