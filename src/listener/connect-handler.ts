import type { IncomingMessage, ServerResponse } from 'node:http';
import { Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import net, { type Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import type { ForwardProxyConfig } from '../config/types';
import { ERRORS, type ErrorCode } from '../core/errors';
import { allowedBy, formatDestination, parseConnectTarget, type Destination, type EgressRule } from '../config/egress';
import { accessLogEntry } from '../telemetry/access-log';
import { localAnswer } from './handler';
import { requestIdFrom } from '../proxy/headers';
import { localAnswerBodyBytes, sendError } from '../proxy/respond';
import { closeSocketGracefully, responseOnSocket } from '../proxy/socket-response';
import type { ListenerIdentity, ProxyServices, StateHolder } from '../proxy/state';

/**
 * The signature of a server's 'connect' event. node:http emits (request, socket, head) for an
 * HTTP/1.1 CONNECT; node:http2 emits (request, response) for an HTTP/2 CONNECT stream, and an
 * HTTP/2 TLS server that also serves HTTP/1.1 emits both kinds under the one name.
 */
export type ConnectHandler = (req: IncomingMessage | Http2ServerRequest, client: Duplex | Http2ServerResponse, head?: Buffer) => void;

const ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';

/**
 * The client's side of a CONNECT. HTTP/1.1: node:http hands the connection over and the
 * tunnel is the socket itself, after "200 Connection Established". HTTP/2 (RFC 9113 §8.5):
 * the tunnel is one stream of the connection; the 200 is its HEADERS frame, DATA frames carry
 * the bytes, and END_STREAM is the half-close. Other streams of that connection go on.
 */
interface ConnectClient {
  /** The request, read the way the request handler reads HTTP/2's (method, headers). */
  readonly req: IncomingMessage;
  /** `host:port` as the client asked for it. */
  readonly target: string;
  /** Bytes from the client, once the tunnel is open. */
  readonly incoming: Readable;
  /** Where the destination's bytes go. */
  readonly outgoing: Duplex;
  /** Bytes the client sent after its request on an HTTP/1.1 connection, before the answer. */
  readonly head: Buffer;
  /** Answers one of the sidecar's errors and ends the client's side; returns the status and body bytes. */
  refuse(code: ErrorCode, requestId: string, message: string): { status: number; bytesOut: number };
  /** Tells the client the tunnel is open. */
  established(): void;
}

function http1Client(req: IncomingMessage, socket: Socket, head: Buffer): ConnectClient {
  // The server removed its own error listener when it handed the socket over.
  socket.on('error', () => socket.destroy());
  return {
    req,
    target: req.url ?? '',
    incoming: socket,
    outgoing: socket,
    head,
    refuse(code, requestId, message) {
      const res = responseOnSocket(req, socket);
      sendError(res, code, requestId, message, { close: true });
      return { status: res.statusCode, bytesOut: localAnswerBodyBytes(res) };
    },
    established: () => void socket.write(ESTABLISHED),
  };
}

function http2Client(req: Http2ServerRequest, res: Http2ServerResponse): ConnectClient {
  // The request handler reads the compatibility objects as node:http's (src/proxy/http2-request.ts).
  const request = req as unknown as IncomingMessage;
  const response = res as unknown as ServerResponse;
  const stream = res.stream;
  stream.on('error', () => stream.destroy());
  return {
    req: request,
    target: req.authority ?? '',
    // The compatibility request reads the stream's DATA; reading the stream beside it would
    // leave the request's buffer growing with nobody to drain it.
    incoming: req,
    outgoing: stream,
    head: Buffer.alloc(0),
    refuse(code, requestId, message) {
      sendError(response, code, requestId, message, { close: true });
      return { status: res.statusCode, bytesOut: localAnswerBodyBytes(response) };
    },
    established: () => {
      // No content-length, no END_STREAM: the stream stays open both ways (RFC 9113 §8.5).
      stream.respond({ ':status': 200 });
    },
  };
}

/**
 * CONNECT on a listener (HTTP_PROXY mode, `listeners[].forwardProxy`), over HTTP/1.1 or
 * HTTP/2: `CONNECT host:port` to a destination the allow list names opens a TCP tunnel to it;
 * the bytes are relayed, never decrypted. Any other destination gets 403 EGRESS_DENIED (logged
 * with the destination); a listener without forwardProxy answers 405. The listener's settings
 * are read from the current state on each CONNECT, so a reload applies to the next tunnel;
 * open tunnels keep theirs.
 */
export function createConnectHandler(listener: ListenerIdentity, holder: StateHolder, services: ProxyServices): ConnectHandler {
  return function handleConnect(req, socketOrResponse, head) {
    const startedAt = performance.now();
    const client =
      req instanceof Http2ServerRequest
        ? http2Client(req, socketOrResponse as Http2ServerResponse)
        : // node:http and node:https hand over the connection's net.Socket / tls.TLSSocket.
          http1Client(req, socketOrResponse as Socket, head ?? Buffer.alloc(0));
    const requestId = requestIdFrom(client.req.headers['x-request-id']);
    const config = holder.current.config.listeners.find((l) => l.name === listener.name)?.forwardProxy;
    const refuse = (code: ErrorCode, message: string, result: string): void => {
      const { status, bytesOut } = client.refuse(code, requestId, message);
      services.metrics.egressTunnels.labels(listener.name, '', result).inc();
      const answer = { ...localAnswer(client.req, listener, requestId, status, '', '', code), path: client.target, bytesOut };
      services.accessLog.write(accessLogEntry(answer, performance.now() - startedAt, ERRORS[code].flag ?? undefined, undefined));
    };
    if (config === undefined) {
      refuse('METHOD_NOT_ALLOWED', `listener ${listener.name} is not a forward proxy (set forwardProxy to tunnel CONNECT)`, 'not_proxy');
      return;
    }
    const destination = parseConnectTarget(client.target);
    if (destination === undefined) {
      refuse('BAD_REQUEST', 'a CONNECT target is host:port', 'bad_request');
      return;
    }
    const rule = allowedBy(config.allow, destination);
    if (rule === undefined) {
      const shown = formatDestination(destination);
      services.logger.warn({ listener: listener.name, destination: shown, requestId }, 'CONNECT refused: the destination is not in forwardProxy.allow');
      refuse('EGRESS_DENIED', `${shown} is not in forwardProxy.allow of listener ${listener.name}`, 'denied');
      return;
    }
    new Tunnel(client, listener, services, config, destination, rule, requestId, startedAt).open();
  };
}

/**
 * One CONNECT tunnel: the connection to the destination (bounded by connectTimeout), then the
 * relay until either side closes or both stay silent for idleTimeout. When one side ends, the
 * other is ended gracefully and destroyed if it lingers (closeSocketGracefully). Bytes and
 * duration are counted once, when both sides have closed.
 */
class Tunnel {
  private upstream: Socket | undefined;
  private established = false;
  private finished = false;
  private openedAt = 0;
  private connectTimer: NodeJS.Timeout | undefined;
  private readonly shown: string;

  /** The client's end of the tunnel: its socket (HTTP/1.1) or its stream (HTTP/2). */
  private readonly client: Duplex;

  constructor(
    private readonly side: ConnectClient,
    private readonly listener: ListenerIdentity,
    private readonly services: ProxyServices,
    private readonly config: ForwardProxyConfig,
    private readonly destination: Destination,
    private readonly rule: EgressRule,
    private readonly requestId: string,
    private readonly startedAt: number,
  ) {
    this.shown = formatDestination(destination);
    this.client = side.outgoing;
  }

  open(): void {
    this.client.once('close', () => this.onClientClose());
    const upstream = net.connect({ host: this.destination.host, port: this.destination.port });
    this.upstream = upstream;
    upstream.on('error', (error: NodeJS.ErrnoException) => {
      if (!this.established) this.connectFailed(error.code ?? error.message);
      else upstream.destroy();
    });
    this.connectTimer = setTimeout(() => {
      upstream.destroy();
      this.connectFailed(`no connection within ${this.config.connectTimeoutMs}ms`);
    }, this.config.connectTimeoutMs);
    this.connectTimer.unref();
    upstream.once('connect', () => this.onConnected());
  }

  private onConnected(): void {
    clearTimeout(this.connectTimer);
    const upstream = this.upstream as Socket;
    if (this.client.destroyed) {
      upstream.destroy();
      return;
    }
    this.established = true;
    this.openedAt = performance.now();
    this.services.metrics.egressTunnels.labels(this.listener.name, this.rule.text, 'opened').inc();
    this.side.established();
    if (this.side.head.length > 0) upstream.write(this.side.head);
    this.side.incoming.pipe(upstream);
    upstream.pipe(this.client);
    const idle = this.config.idleTimeoutMs;
    // Silence on both sides: each socket's timer is re-armed by its own traffic only, so a
    // one-way stream (a download) keeps the quiet side's timer running; one timer on the
    // tunnel, re-armed by either side, is what "not a byte either way" means.
    const timer = setTimeout(() => {
      this.client.destroy();
      upstream.destroy();
    }, idle);
    timer.unref();
    const touch = (): void => void timer.refresh();
    this.side.incoming.on('data', touch);
    upstream.on('data', touch);
    upstream.once('close', () => {
      clearTimeout(timer);
      closeSocketGracefully(this.client);
      this.onUpstreamClose();
    });
    this.client.once('close', () => clearTimeout(timer));
  }

  private connectFailed(reason: string): void {
    clearTimeout(this.connectTimer);
    if (this.finished) return;
    this.finished = true;
    this.services.metrics.egressTunnels.labels(this.listener.name, this.rule.text, 'connect_failure').inc();
    this.services.logger.warn({ listener: this.listener.name, destination: this.shown, reason, requestId: this.requestId }, 'CONNECT: the destination could not be reached');
    if (this.client.destroyed) return;
    const { status, bytesOut } = this.side.refuse('UPSTREAM_CONNECT_FAILURE', this.requestId, `${this.shown}: ${reason}`);
    const answer = {
      ...localAnswer(this.side.req, this.listener, this.requestId, status, '', '', 'UPSTREAM_CONNECT_FAILURE'),
      path: this.side.target,
      bytesOut,
      upstreamUrl: this.shown,
    };
    this.services.accessLog.write(accessLogEntry(answer, performance.now() - this.startedAt, 'UF', undefined));
  }

  private onClientClose(): void {
    const upstream = this.upstream;
    if (!this.established) {
      // The client left while the connection was being opened.
      clearTimeout(this.connectTimer);
      upstream?.destroy();
      return;
    }
    if (upstream !== undefined) closeSocketGracefully(upstream);
    this.onUpstreamClose();
  }

  /** Called on each side's close; records the tunnel once both are closed. */
  private onUpstreamClose(): void {
    const upstream = this.upstream as Socket;
    if (this.finished || !upstream.destroyed || !this.client.destroyed) return;
    this.finished = true;
    const metrics = this.services.metrics;
    const name = this.listener.name;
    // Bytes the destination received from the app, and sent back to it.
    const sent = upstream.bytesWritten;
    const received = upstream.bytesRead;
    metrics.egressTunnelBytes.labels(name, this.rule.text, 'upstream').inc(sent);
    metrics.egressTunnelBytes.labels(name, this.rule.text, 'downstream').inc(received);
    metrics.egressTunnelDuration.labels(name, this.rule.text).observe((performance.now() - this.openedAt) / 1000);
    const entry = accessLogEntry(
      {
        ...localAnswer(this.side.req, this.listener, this.requestId, 200, '', '', undefined),
        path: this.side.target,
        bytesIn: sent,
        bytesOut: received,
        attempts: 1,
        upstreamUrl: this.shown,
      },
      performance.now() - this.startedAt,
      undefined,
      undefined,
    );
    entry.upgrade = 'connect';
    this.services.accessLog.write(entry);
  }
}
