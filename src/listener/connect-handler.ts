import type { IncomingMessage } from 'node:http';
import net, { type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ForwardProxyConfig } from '../config/types';
import { ERRORS, type ErrorCode } from '../core/errors';
import { allowedBy, formatDestination, parseConnectTarget, type Destination, type EgressRule } from '../config/egress';
import { accessLogEntry } from '../telemetry/access-log';
import { localAnswer } from './handler';
import { requestIdFrom } from '../proxy/headers';
import { localAnswerBodyBytes, sendError } from '../proxy/respond';
import { closeSocketGracefully, responseOnSocket } from '../proxy/socket-response';
import type { ListenerIdentity, ProxyServices, StateHolder } from '../proxy/state';

/** The signature of an http/https server's 'connect' event. */
export type ConnectHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

const ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';

/**
 * CONNECT on a listener (HTTP_PROXY mode, `listeners[].forwardProxy`): `CONNECT host:port`
 * to a destination the allow list names opens a TCP tunnel to it; the bytes are relayed, never
 * decrypted. Any other destination gets 403 EGRESS_DENIED (logged with the destination); a
 * listener without forwardProxy answers 405. The listener's settings are read from the current
 * state on each CONNECT, so a reload applies to the next tunnel; open tunnels keep theirs.
 */
export function createConnectHandler(listener: ListenerIdentity, holder: StateHolder, services: ProxyServices): ConnectHandler {
  return function handleConnect(req, duplex, head) {
    const startedAt = performance.now();
    // node:http and node:https hand over the connection's net.Socket / tls.TLSSocket.
    const socket = duplex as Socket;
    const requestId = requestIdFrom(req.headers['x-request-id']);
    const config = holder.current.config.listeners.find((l) => l.name === listener.name)?.forwardProxy;
    const refuse = (code: ErrorCode, message: string, destination: string, result: string): void => {
      const res = responseOnSocket(req, socket);
      sendError(res, code, requestId, message, { close: true });
      services.metrics.egressTunnels.labels(listener.name, destination, result).inc();
      const answer = { ...localAnswer(req, listener, requestId, res.statusCode, '', '', code), bytesOut: localAnswerBodyBytes(res) };
      services.accessLog.write(accessLogEntry(answer, performance.now() - startedAt, ERRORS[code].flag ?? undefined, undefined));
    };
    if (config === undefined) {
      refuse('METHOD_NOT_ALLOWED', `listener ${listener.name} is not a forward proxy (set forwardProxy to tunnel CONNECT)`, '', 'not_proxy');
      return;
    }
    const target = req.url ?? '';
    const destination = parseConnectTarget(target);
    if (destination === undefined) {
      refuse('BAD_REQUEST', 'a CONNECT target is host:port', '', 'bad_request');
      return;
    }
    const rule = allowedBy(config.allow, destination);
    if (rule === undefined) {
      const shown = formatDestination(destination);
      services.logger.warn({ listener: listener.name, destination: shown, requestId }, 'CONNECT refused: the destination is not in forwardProxy.allow');
      refuse('EGRESS_DENIED', `${shown} is not in forwardProxy.allow of listener ${listener.name}`, '', 'denied');
      return;
    }
    new Tunnel(req, socket, head, listener, services, config, destination, rule, requestId, startedAt).open();
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

  constructor(
    private readonly req: IncomingMessage,
    private readonly client: Socket,
    private readonly head: Buffer,
    private readonly listener: ListenerIdentity,
    private readonly services: ProxyServices,
    private readonly config: ForwardProxyConfig,
    private readonly destination: Destination,
    private readonly rule: EgressRule,
    private readonly requestId: string,
    private readonly startedAt: number,
  ) {
    this.shown = formatDestination(destination);
  }

  open(): void {
    // The server removed its own error listener when it handed the socket over.
    this.client.on('error', () => this.client.destroy());
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
    this.client.write(ESTABLISHED);
    if (this.head.length > 0) upstream.write(this.head);
    this.client.pipe(upstream);
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
    this.client.on('data', touch);
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
    const res = responseOnSocket(this.req, this.client);
    sendError(res, 'UPSTREAM_CONNECT_FAILURE', this.requestId, `${this.shown}: ${reason}`, { close: true });
    const answer = {
      ...localAnswer(this.req, this.listener, this.requestId, res.statusCode, '', '', 'UPSTREAM_CONNECT_FAILURE'),
      bytesOut: localAnswerBodyBytes(res),
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
        ...localAnswer(this.req, this.listener, this.requestId, 200, '', '', undefined),
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
