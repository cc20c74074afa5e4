import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { SidecarError } from '../core/errors';
import { setAttempt } from '../core/header-list';
import type { EndpointRuntime } from '../upstream/cluster';
import { classifyUpstreamError } from '../upstream/error-map';
import { sendUpgradeRequest } from '../upstream/websocket';
import type { AttemptControl } from './context';
import { Interceptor } from './interceptor';
import type { Tunnel } from './tunnel';

const TUNNEL_ENDED = new SidecarError('UPSTREAM_RESET', 'the tunnel ended before the app answered the upgrade');
const NO_RESUME = (): void => {};

/** One handshake attempt of a tunnel: the upgrade request to one endpoint and what it got back. */
export class TunnelAttempt implements AttemptControl {
  /** The answer arrived or the request failed: nothing left to time out. */
  done = false;
  /** A policy (retry) replaced this answer: it is dropped, not relayed. */
  discarded = false;
  /** The app's answer (a 101, or anything else to relay). */
  response: IncomingMessage | undefined;
  /** After a 101: the connection that became the app's side of the tunnel, and bytes already read on it. */
  upgradedSocket: Socket | undefined;
  upgradedHead: Buffer | undefined;
  connectTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly request: ClientRequest,
    readonly endpoint: EndpointRuntime,
  ) {}

  discard(): void {
    this.discarded = true;
  }

  /** Drops the request, its connection and any answer. */
  destroy(reason?: Error): void {
    this.clearConnectTimer();
    this.request.destroy(reason);
    this.response?.destroy();
    this.upgradedSocket?.destroy();
  }

  clearConnectTimer(): void {
    if (this.connectTimer !== undefined) {
      clearTimeout(this.connectTimer);
      this.connectTimer = undefined;
    }
  }
}

/**
 * The terminal of a WebSocket upgrade: sends the handshake to the endpoint the cluster picks
 * (one new connection per attempt, see upstream/websocket.ts) and reports its outcome up the
 * route's chain like the pool does for a request: a 101 or another answer as `onResponse`, a
 * failure before any answer (refused, reset, timed out) as `onFailure`, which the route's
 * retry policy may retry to another endpoint. The splice after a 101 is the client side's
 * (tunnel-observe.ts).
 */
export class TunnelTerminal extends Interceptor {
  dispatch(x: Tunnel): void {
    // Reached from the chain's start, from admission after a wait for a slot and after a backoff.
    if (x.abandoned || x.finished) return;
    const cluster = x.cluster;
    const endpoint = cluster.pick(x.endpoint);
    if (endpoint === undefined) {
      this.up!.onRefused(x, 'NO_HEALTHY_UPSTREAM', `no endpoint of cluster ${cluster.config.name} is healthy`);
      return;
    }
    if (endpoint.config.url.startsWith('https:')) {
      // The handshake below speaks plain HTTP: an upgrade to an https:// endpoint would send the
      // client's headers unencrypted to a remote host. Refused until it can originate TLS.
      this.up!.onRefused(x, 'UPSTREAM_TLS_FAILURE', 'WebSocket upgrades to https:// endpoints are not supported yet');
      return;
    }
    x.endpoint = endpoint;
    const attempt = ++x.attempt;
    setAttempt(x.upstreamHeaders, attempt);
    x.trace.attemptStarted(attempt, endpoint.config.url, x.upstreamPath, x.upstreamHeaders, attempt > 1 ? { reason: x.retryReason, backoffMs: x.backoffMs } : undefined);
    x.attemptStartedAt = performance.now();
    // Host rewrite and the clock run here, before the headers are sent.
    this.up!.onAttemptStart(x);
    endpoint.requests++;
    const request = sendUpgradeRequest(endpoint, x.upstreamPath, x.upstreamHeaders, x.req.headers.upgrade ?? 'websocket', cluster.config.maxResponseHeaderBytes);
    const handler = new TunnelAttempt(request, endpoint);
    x.handler = handler;
    request.on('socket', (socket: Socket) => this.onSocket(x, handler, socket));
    request.on('response', (res: IncomingMessage) => this.onAnswer(x, handler, res, undefined, undefined));
    request.on('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => this.onAnswer(x, handler, res, socket, head));
    request.on('error', (error: Error) => this.onAttemptError(x, handler, error));
    request.end();
  }

  private onSocket(x: Tunnel, handler: TunnelAttempt, socket: Socket): void {
    x.upstreamSocketsOpen++;
    x.websockets.trackUpstreamSocket(socket);
    socket.once('close', () => {
      x.upstreamSocketsOpen--;
      x.chain.head.onUpstreamSocketClosed(x);
    });
    if (socket.connecting) {
      const connectTimeoutMs = x.cluster.config.connectTimeoutMs;
      handler.connectTimer = setTimeout(() => {
        handler.connectTimer = undefined;
        handler.request.destroy(new SidecarError('UPSTREAM_CONNECT_FAILURE', `no connection to the endpoint within ${connectTimeoutMs}ms`));
      }, connectTimeoutMs);
      socket.once('connect', () => handler.clearConnectTimer());
    }
  }

  /** The app answered the upgrade: 101 (with the connection that becomes the tunnel) or anything else. */
  private onAnswer(x: Tunnel, handler: TunnelAttempt, res: IncomingMessage, socket: Socket | undefined, head: Buffer | undefined): void {
    handler.done = true;
    handler.clearConnectTimer();
    handler.response = res;
    handler.upgradedSocket = socket;
    handler.upgradedHead = head;
    if (!x.isCurrent(handler)) {
      handler.destroy();
      return;
    }
    const status = res.statusCode ?? 0;
    x.trace.attemptResponded(status);
    const failed = status >= 500;
    if (failed) handler.endpoint.responses5xx++;
    x.cluster.recordAttempt(handler.endpoint, failed);
    this.up!.onAttemptEnd(x);
    const rawHeaders = res.rawHeaders.map((value) => Buffer.from(value, 'latin1'));
    this.up!.onResponse(x, handler, status, rawHeaders, NO_RESUME, res.statusMessage ?? '');
    // Replaced by a retry: nothing of it reaches the client.
    if (handler.discarded) handler.destroy();
  }

  private onAttemptError(x: Tunnel, handler: TunnelAttempt, error: Error): void {
    const answered = handler.done;
    handler.done = true;
    handler.clearConnectTimer();
    // After an answer, its connection is the client side's to watch; an abandoned attempt reports nothing.
    if (answered || !x.isCurrent(handler)) return;
    const failure = classifyUpstreamError(error);
    x.trace.attemptEnded(failure);
    handler.endpoint.failures++;
    x.cluster.recordAttempt(handler.endpoint, true);
    this.up!.onAttemptEnd(x);
    this.up!.onFailure(x, failure);
  }

  override onPerTryTimeout(x: Tunnel): boolean {
    const handler = x.handler;
    if (handler === undefined || handler.done) return false;
    // Its error callback goes through onAttemptError, where the retry policy sees it.
    handler.request.destroy(new SidecarError('UPSTREAM_TIMEOUT', `no answer to the upgrade within the per-try timeout (${x.route.retry.perTryTimeoutMs}ms)`));
    return true;
  }

  override onDeadline(x: Tunnel): void {
    const handler = x.handler;
    const timeout = new SidecarError('UPSTREAM_TIMEOUT', `the app did not answer the upgrade within the route timeout (${x.route.timeoutMs}ms)`);
    if (handler !== undefined && !handler.done) {
      handler.request.destroy(timeout);
      return;
    }
    x.abandoned = true;
    this.up!.onFailure(x, classifyUpstreamError(timeout));
  }

  override onEnd(x: Tunnel): void {
    // A handshake still running when the tunnel ends (its client left) is dropped now.
    const handler = x.handler;
    if (handler !== undefined && !handler.done) handler.destroy(TUNNEL_ENDED);
  }
}
