import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import httpProxy from 'http-proxy';
import type { ClusterRoute } from '../config/types';
import { ERROR_STATUS, SidecarError, type ErrorCode } from '../core/errors';
import { downstreamResponseHeaders } from './headers';
import { sendError } from './respond';
import { closeSocketGracefully, responseOnSocket } from './socket-response';
import type { ListenerIdentity, ProxyServices } from './state';
import { accessLogEntry, type AccessLogEntry } from '../telemetry/access-log';
import type { ClusterRuntime, EndpointRuntime } from '../upstream/cluster';
import { classifyUpstreamError } from '../upstream/error-map';
import type { BreakerOutcome, BreakerTicket } from '../policy/circuit-breaker';
import type { AdmissionWaiter } from '../policy/concurrency-limit';

/**
 * WebSocket tunnels: an `Upgrade: websocket` request that matched a cluster route is sent to
 * an endpoint by http-proxy, and after the app's 101 the two sockets are piped together.
 *
 * http-proxy 1.18 is unmaintained and leaks sockets on several paths (a client that leaves
 * during the handshake leaves the upstream request running; an error on one side only ends,
 * never destroys, the other; a non-101 answer is relayed with headers that no longer match
 * the body). So every tunnel here owns both sockets: any close, error or idle timeout on one
 * side closes the other, and each socket is destroyed at most SOCKET_CLOSE_LINGER_MS after
 * its peer went away. http-proxy is used for what it does well: the handshake request and
 * the splice after 101.
 */

/** A routed upgrade request, ready to be tunnelled. */
export interface TunnelRequest {
  readonly req: IncomingMessage;
  /** The client's socket, handed over by the HTTP (or HTTPS) server's 'upgrade' event. */
  readonly socket: Socket;
  /** Bytes the client sent after the request head (the server read them already). */
  readonly head: Buffer;
  readonly listener: ListenerIdentity;
  readonly route: ClusterRoute;
  readonly cluster: ClusterRuntime;
  readonly requestId: string;
  /** Path and query sent to the app (after rewritePrefix). */
  readonly upstreamPath: string;
  /**
   * Headers for the app as a flat [name, value, ...] list (upstreamRequestHeaders: the same
   * X-Forwarded-* and x-request-id policy as any request). The Upgrade and Connection headers
   * the handshake needs are added when the request is sent.
   */
  readonly upstreamHeaders: string[];
  readonly startedAt: number;
}

/**
 * Tracing hook. `start` runs once per tunnel, before the handshake request is sent; it may
 * append headers (traceparent) to `request.upstreamHeaders`. The span ends when both sockets
 * have closed, with the tunnel's access log entry (status, duration, bytes, error, flags).
 */
export interface TunnelTracer {
  start(request: TunnelRequest): TunnelSpan;
}

export interface TunnelSpan {
  end(entry: AccessLogEntry): void;
}

const NO_SPAN: TunnelSpan = { end: () => {} };
export const NO_TUNNEL_TRACING: TunnelTracer = { start: () => NO_SPAN };

/** What a Tunnel needs from the proxy that owns it. */
interface TunnelOwner {
  readonly services: ProxyServices;
  readonly tracer: TunnelTracer;
  forward(tunnel: Tunnel, req: IncomingMessage, socket: Socket, head: Buffer, options: httpProxy.ServerOptions): void;
  trackUpstreamSocket(socket: Socket): void;
  removed(tunnel: Tunnel): void;
}

/** One http-proxy instance for every tunnel of the process, and the set of open tunnels. */
export class WebSocketProxy {
  private readonly proxy = httpProxy.createProxyServer({
    // The sidecar builds the forwarding headers itself (headers.ts).
    xfwd: false,
    // req.url is already the path to send (after rewritePrefix); http-proxy must not re-parse it.
    toProxy: true,
    prependPath: false,
  });
  private readonly tunnels = new Set<Tunnel>();
  private readonly tunnelOf = new WeakMap<IncomingMessage, Tunnel>();
  private readonly upstreamSockets = new Set<Socket>();
  private readonly owner: TunnelOwner;

  constructor(services: ProxyServices, tracer: TunnelTracer = NO_TUNNEL_TRACING) {
    const proxy = this.proxy;
    const tunnels = this.tunnels;
    const tunnelOf = this.tunnelOf;
    const upstreamSockets = this.upstreamSockets;
    this.owner = {
      services,
      tracer,
      forward: (tunnel, req, socket, head, options) => {
        tunnelOf.set(req, tunnel);
        proxy.ws(req, socket, head, options, (error: Error) => tunnel.onUpstreamError(error));
      },
      trackUpstreamSocket: (socket) => {
        upstreamSockets.add(socket);
        socket.once('close', () => upstreamSockets.delete(socket));
      },
      removed: (tunnel) => tunnels.delete(tunnel),
    };
    // Every error is also given to the per-request callback; without a listener http-proxy
    // would throw it.
    proxy.on('error', (error: Error, req: IncomingMessage) => {
      if (tunnelOf.get(req) === undefined) services.logger.warn({ err: error }, 'websocket proxy error outside a tunnel');
    });
    proxy.on('proxyReqWs', (proxyReq: ClientRequest, req: IncomingMessage) => {
      const tunnel = tunnelOf.get(req);
      if (tunnel === undefined) proxyReq.destroy();
      else tunnel.onUpstreamRequest(proxyReq);
    });
  }

  /** Sends the handshake upstream and, after a 101, relays both ways until either side closes. */
  open(request: TunnelRequest): void {
    const tunnel = new Tunnel(request, this.owner);
    this.tunnels.add(tunnel);
    tunnel.start();
  }

  /** Tunnels not yet closed on both sides (handshakes included). */
  get openTunnels(): number {
    return this.tunnels.size;
  }

  /** Sockets to apps that are still open, handshakes and tunnels together. */
  get openUpstreamSockets(): number {
    return this.upstreamSockets.size;
  }

  /** Cuts every tunnel (shutdown): a tunnel has no request boundary to drain at. */
  closeAll(): void {
    for (const tunnel of this.tunnels) tunnel.shutdown();
  }
}

/** Envoy-style flags for the access log: who ended the tunnel. */
type TunnelFlag = 'DC' | 'UC' | 'SI';

/** Short-lived state of one tunnel, from the upgrade request to both sockets closed. */
class Tunnel implements AdmissionWaiter {
  private endpoint: EndpointRuntime | undefined;
  /** The cluster breaker's ticket, settled once, by the handshake's outcome. */
  private breakerTicket: BreakerTicket | undefined;
  /** Holds a slot of the cluster's concurrency limit until both sockets closed. */
  private admitted = false;
  private upstreamRequest: ClientRequest | undefined;
  private upstreamSocket: Socket | undefined;
  private upstreamSocketsOpen = 0;
  private clientOpen = true;
  /** The client left before any answer: nothing is answered any more (logged as 499). */
  private clientGone = false;
  private upgraded = false;
  private answered = false;
  private finished = false;
  private status = 0;
  private errorCode: ErrorCode | undefined;
  private flag: TunnelFlag | undefined;
  private bytesIn = 0;
  private bytesOut = 0;
  private upstreamMs: number | undefined;
  private dispatchedAt = 0;
  private connectTimer: NodeJS.Timeout | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private span: TunnelSpan = NO_SPAN;
  /** The path as the client sent it, for the access log (req.url is rewritten for the app). */
  private readonly clientPath: string;

  constructor(
    private readonly request: TunnelRequest,
    private readonly owner: TunnelOwner,
  ) {
    this.clientPath = request.req.url ?? '';
  }

  start(): void {
    const { req, socket, route, cluster } = this.request;
    socket.on('error', this.onClientError);
    socket.once('end', this.onClientEnd);
    socket.once('close', this.onClientClose);
    // The cluster's policies, as for any request: an open circuit refuses the upgrade, and an
    // open tunnel holds a slot of the concurrency limit for its whole life. A tunnel does not
    // wait for a slot (one frees up when a tunnel or request ends, which may take hours).
    const ticket = cluster.breaker.admit();
    if (ticket === undefined) {
      this.refuse('CIRCUIT_OPEN', `the circuit breaker of cluster ${cluster.config.name} is ${cluster.breaker.state}`);
      return;
    }
    this.breakerTicket = ticket;
    const limit = cluster.limit;
    const admission = limit.enter(this);
    if (admission !== 'admitted') {
      if (admission === 'queued') limit.cancel(this);
      this.refuse('OVERLOADED', `cluster ${cluster.config.name} has ${limit.active} requests and tunnels in flight, its limit`);
      return;
    }
    this.admitted = true;
    const endpoint = cluster.pick();
    if (endpoint === undefined) {
      this.answerLocally('NO_HEALTHY_UPSTREAM');
      return;
    }
    if (endpoint.tls) {
      // The tunnel below speaks plain HTTP: an upgrade to an https:// endpoint would send the
      // client's headers unencrypted to a remote host. Refused until it can originate TLS.
      this.answerLocally('UPSTREAM_TLS_FAILURE', 'WebSocket upgrades to https:// endpoints are not supported yet');
      return;
    }
    this.endpoint = endpoint;
    this.span = this.owner.tracer.start(this.request);
    req.headers = headerObject(this.request.upstreamHeaders, ['connection', 'Upgrade', 'upgrade', req.headers.upgrade ?? 'websocket']);
    req.url = this.request.upstreamPath;
    this.dispatchedAt = performance.now();
    this.handshakeTimer = setTimeout(this.onHandshakeTimeout, route.timeoutMs);
    const target = new URL(endpoint.config.url);
    this.owner.forward(this, req, socket, this.request.head, {
      target: { protocol: 'http:', host: endpoint.address ?? target.hostname.replace(/^\[|\]$/g, ''), port: Number(target.port) },
      // http-proxy builds the upstream request's options on top of this object: the response
      // header limit is the cluster's, as for every other request.
      ssl: { maxHeaderSize: cluster.config.maxResponseHeaderBytes },
    });
  }

  // --- upstream side ---

  onUpstreamRequest(proxyReq: ClientRequest): void {
    this.upstreamRequest = proxyReq;
    proxyReq.on('socket', this.onUpstreamSocket);
    // Registered before http-proxy's own listeners, so the headers are rewritten before it
    // writes them to the client.
    proxyReq.on('response', this.onUpstreamResponse);
    proxyReq.on('upgrade', this.onUpstreamUpgrade);
  }

  private readonly onUpstreamSocket = (socket: Socket): void => {
    this.upstreamSocket = socket;
    this.upstreamSocketsOpen++;
    this.owner.trackUpstreamSocket(socket);
    socket.once('close', this.onUpstreamClose);
    if (socket.connecting) {
      this.connectTimer = setTimeout(this.onConnectTimeout, this.request.cluster.config.connectTimeoutMs);
      socket.once('connect', () => this.clearConnectTimer());
    }
  };

  /** The app answered the upgrade with something else than 101: relay it, then close both sides. */
  private readonly onUpstreamResponse = (res: IncomingMessage): void => {
    this.clearTimers();
    this.settleBreaker((res.statusCode ?? 502) >= 500 ? 'failure' : 'success');
    this.upstreamMs = performance.now() - this.dispatchedAt;
    this.markAnswered(res.statusCode ?? ERROR_STATUS.UPSTREAM_PROTOCOL_ERROR);
    // http-proxy writes `res.headers` and pipes the decoded body: Transfer-Encoding must go
    // (it is hop-by-hop anyway) and the end of the connection delimits the body.
    res.headers = headerObject(this.relayedHeaders(res), ['connection', 'close']);
    const closeBoth = (): void => {
      this.upstreamRequest?.destroy();
      closeSocketGracefully(this.request.socket);
    };
    // The relayed refusal's body is what the client receives: bytes_out of the log line.
    res.on('data', (chunk: Buffer) => (this.bytesOut += chunk.length));
    res.once('end', closeBoth);
    res.once('close', closeBoth);
  };

  private readonly onUpstreamUpgrade = (res: IncomingMessage, upstream: Socket): void => {
    this.clearTimers();
    this.settleBreaker('success');
    this.upstreamMs = performance.now() - this.dispatchedAt;
    this.upgraded = true;
    this.markAnswered(101);
    res.headers = headerObject(this.relayedHeaders(res), ['connection', 'Upgrade', 'upgrade', res.headers.upgrade ?? 'websocket']);
    const { socket: client, listener, cluster, route } = this.request;
    this.owner.services.metrics.websocketTunnelsActive.labels(listener.name, cluster.config.name).inc();
    upstream.on('error', this.onUpstreamSocketError);
    upstream.on('data', (chunk: Buffer) => (this.bytesOut += chunk.length));
    upstream.once('end', this.onUpstreamEnd);
    client.on('data', (chunk: Buffer) => (this.bytesIn += chunk.length));
    // Any byte read or written on the client socket (the same bytes as on the upstream one)
    // restarts the idle clock.
    client.setTimeout(route.websocket.idleTimeoutMs);
    client.once('timeout', this.onIdle);
  };

  /** From http-proxy: the handshake request failed, or the upstream socket failed after 101. */
  onUpstreamError(error: Error): void {
    if (this.finished) return;
    if (this.upgraded || this.answered || this.clientGone) {
      if (this.upgraded) this.flag ??= 'UC';
      this.destroyBoth();
      return;
    }
    this.upstreamRequest?.destroy();
    const failure = classifyUpstreamError(error);
    if (this.endpoint !== undefined) this.endpoint.failures++;
    this.settleBreaker('failure');
    this.answerLocally(failure.code);
  }

  private readonly onUpstreamSocketError = (): void => {
    this.flag ??= 'UC';
    this.destroyBoth();
  };

  private readonly onUpstreamEnd = (): void => {
    this.flag ??= 'UC';
    closeSocketGracefully(this.request.socket);
  };

  private readonly onUpstreamClose = (): void => {
    this.upstreamSocketsOpen--;
    if (this.upgraded) {
      this.flag ??= 'UC';
      closeSocketGracefully(this.request.socket);
    }
    this.maybeFinish();
  };

  private readonly onConnectTimeout = (): void => {
    this.connectTimer = undefined;
    const ms = this.request.cluster.config.connectTimeoutMs;
    this.upstreamRequest?.destroy(new SidecarError('UPSTREAM_CONNECT_FAILURE', `no connection to the endpoint within ${ms}ms`));
  };

  private readonly onHandshakeTimeout = (): void => {
    this.handshakeTimer = undefined;
    this.upstreamRequest?.destroy(new SidecarError('UPSTREAM_TIMEOUT', 'the app did not answer the upgrade within the route timeout'));
  };

  // --- client side ---

  private readonly onClientError = (): void => {
    this.flag ??= 'DC';
    this.destroyBoth();
  };

  /** The client half-closed: after the upgrade the app gets the FIN; before it, the client is gone. */
  private readonly onClientEnd = (): void => {
    if (this.upgraded) {
      this.flag ??= 'DC';
      if (this.upstreamSocket !== undefined) closeSocketGracefully(this.upstreamSocket);
    } else if (!this.answered) {
      this.flag = 'DC';
      this.clientGone = true;
      this.clearTimers();
      this.destroyBoth();
    }
  };

  private readonly onClientClose = (): void => {
    this.clientOpen = false;
    if (this.upgraded) {
      this.flag ??= 'DC';
      if (this.upstreamSocket !== undefined) closeSocketGracefully(this.upstreamSocket);
    } else if (!this.answered) {
      // Gone during the handshake: nobody will read the answer.
      this.flag = 'DC';
      this.clientGone = true;
      this.clearTimers();
      this.upstreamRequest?.destroy();
    } else {
      this.upstreamRequest?.destroy();
    }
    this.maybeFinish();
  };

  private readonly onIdle = (): void => {
    this.flag = 'SI';
    this.destroyBoth();
  };

  shutdown(): void {
    this.errorCode ??= 'DRAINING';
    this.destroyBoth();
  }

  // --- helpers ---

  /** The app's response headers under the route's response policy, plus x-request-id. */
  private relayedHeaders(res: IncomingMessage): string[] {
    const raw = res.rawHeaders.map((value) => Buffer.from(value, 'latin1'));
    return downstreamResponseHeaders(raw, this.request.route.responseHeaders, this.request.requestId);
  }

  /** A cluster policy refused the upgrade: it says nothing about the app. */
  private refuse(code: ErrorCode, message: string): void {
    this.owner.services.metrics.circuitRejections.labels(this.request.cluster.config.name, code.toLowerCase()).inc();
    this.answerLocally(code, message);
  }

  /** The one place the breaker's ticket is settled; later calls find none. */
  private settleBreaker(outcome: BreakerOutcome): void {
    const ticket = this.breakerTicket;
    if (ticket !== undefined) {
      this.breakerTicket = undefined;
      ticket.settle(outcome);
    }
  }

  /** Tunnels do not wait for a slot (see start): never called. */
  admit(): void {}

  private answerLocally(code: ErrorCode, message?: string): void {
    this.clearTimers();
    this.errorCode = code;
    this.markAnswered(ERROR_STATUS[code]);
    const { req, socket, requestId } = this.request;
    if (socket.destroyed) return;
    this.bytesOut += sendError(responseOnSocket(req, socket), code, requestId, message, { close: true });
  }

  private markAnswered(status: number): void {
    this.answered = true;
    this.status = status;
    const { listener, route, cluster } = this.request;
    this.owner.services.metrics.websocketUpgrades.labels(listener.name, route.name, cluster.config.name, String(status)).inc();
  }

  private destroyBoth(): void {
    this.request.socket.destroy();
    this.upstreamRequest?.destroy();
    this.upstreamSocket?.destroy();
  }

  private clearConnectTimer(): void {
    if (this.connectTimer !== undefined) {
      clearTimeout(this.connectTimer);
      this.connectTimer = undefined;
    }
  }

  private clearTimers(): void {
    this.clearConnectTimer();
    if (this.handshakeTimer !== undefined) {
      clearTimeout(this.handshakeTimer);
      this.handshakeTimer = undefined;
    }
  }

  /** The tunnel is over once the client socket and every upstream socket have closed. */
  private maybeFinish(): void {
    if (this.finished || this.clientOpen || this.upstreamSocketsOpen > 0) return;
    this.finished = true;
    this.clearTimers();
    this.owner.removed(this);
    // Ended before any answer of the app (the client left, or no endpoint was healthy).
    this.settleBreaker('neutral');
    if (this.admitted) {
      this.admitted = false;
      this.request.cluster.limit.leave();
    }
    const { metrics, accessLog } = this.owner.services;
    const { listener, route, cluster, req, requestId, startedAt } = this.request;
    const clusterName = cluster.config.name;
    // Never answered: the client left during the handshake.
    if (!this.answered) this.markAnswered(499);
    if (this.upgraded) {
      metrics.websocketTunnelsActive.labels(listener.name, clusterName).dec();
      metrics.websocketTunnelBytes.labels(clusterName, 'upstream').inc(this.bytesIn);
      metrics.websocketTunnelBytes.labels(clusterName, 'downstream').inc(this.bytesOut);
    }
    const entry = accessLogEntry(
      {
        method: req.method ?? 'GET',
        path: this.clientPath,
        listenerName: listener.name,
        routeName: route.name,
        clusterName,
        requestId,
        status: this.status,
        upstreamMs: this.upstreamMs,
        bytesIn: this.bytesIn,
        bytesOut: this.bytesOut,
        attempts: this.upstreamRequest === undefined ? 0 : 1,
        errorCode: this.errorCode,
        upstreamUrl: this.endpoint?.config.url,
      },
      performance.now() - startedAt,
      this.flag,
      undefined,
    );
    entry.upgrade = 'websocket';
    accessLog.write(entry);
    this.span.end(entry);
  }
}

/**
 * A flat [name, value, ...] list as the header object http-proxy expects; repeated names
 * become arrays (written as separate header lines).
 */
function headerObject(list: readonly string[], extra: readonly string[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (const pairs of [list, extra]) {
    for (let i = 0; i < pairs.length; i += 2) {
      const name = pairs[i];
      const value = pairs[i + 1];
      const existing = out[name];
      if (existing === undefined) out[name] = value;
      else if (Array.isArray(existing)) existing.push(value);
      else out[name] = [existing, value];
    }
  }
  return out;
}
