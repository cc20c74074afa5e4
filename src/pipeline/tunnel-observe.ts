import type { Socket } from 'node:net';
import { ERROR_STATUS, type ErrorCode } from '../core/errors';
import { downstreamResponseHeaders } from '../proxy/headers';
import { sendError } from '../proxy/respond';
import { closeSocketGracefully, responseOnSocket } from '../proxy/socket-response';
import { accessLogEntry } from '../telemetry/access-log';
import type { AttemptFailure } from '../upstream/error-map';
import { prepareTunnelSocket, writeResponseHead } from '../upstream/websocket';
import { Interceptor } from './interceptor';
import { ROUTE_POLICY_REFUSALS } from './observe';
import type { Tunnel } from './tunnel';
import type { TunnelAttempt } from './tunnel-terminal';

/**
 * The head of a WebSocket upgrade's chain: the client's side of the tunnel. It answers the
 * upgrade with what the steps below let through: the app's 101, after which the two sockets
 * are spliced together; any other answer of the app, relayed and then both sockets closed;
 * or the sidecar's own error (503 CIRCUIT_OPEN, OVERLOADED, 504 ...). It owns both sockets
 * from then on: any close, error or idle timeout on one side closes the other, and each is
 * destroyed at most SOCKET_CLOSE_LINGER_MS after its peer went away. Once the client's socket
 * and every socket to the app have closed, it ends the chain (the tunnel's concurrency slot is
 * given back then) and records the tunnel once: the server span, the metrics, the access log.
 */
export class TunnelObserveInterceptor extends Interceptor {
  dispatch(x: Tunnel): void {
    const socket = x.socket;
    socket.on('error', x.onClientError);
    socket.once('end', x.onClientEnd);
    socket.once('close', x.onClientClose);
    // Every request of the cluster counts towards its retry budget, retried or not.
    x.cluster.retryBudget.recordRequest();
    this.next!.dispatch(x);
  }

  override onAttemptStart(): void {}

  override onAttemptEnd(): void {}

  override onResponse(x: Tunnel, attempt: TunnelAttempt, statusCode: number): boolean {
    x.upstreamMs = performance.now() - x.attemptStartedAt;
    x.responseStarted = true;
    const upstream = attempt.upgradedSocket;
    if (statusCode === 101 && upstream !== undefined) this.splice(x, attempt, upstream);
    else this.relay(x, attempt);
    return true;
  }

  /** The app switched protocols: relay its 101, then pipe the two sockets together until either side ends. */
  private splice(x: Tunnel, attempt: TunnelAttempt, upstream: Socket): void {
    const res = attempt.response!;
    const client = x.socket;
    x.upgraded = true;
    x.upstreamSocket = upstream;
    this.markAnswered(x, 101);
    const { metrics } = x.services;
    metrics.websocketTunnelsActive.labels(x.listener.name, x.cluster.config.name).inc();
    const headers = relayedHeaders(x, res.rawHeaders);
    headers.push('connection', 'Upgrade', 'upgrade', res.headers.upgrade ?? 'websocket');
    writeResponseHead(client, 101, 'Switching Protocols', headers);
    prepareTunnelSocket(client);
    prepareTunnelSocket(upstream);
    upstream.on('error', () => this.upstreamFailed(x));
    upstream.once('end', () => {
      x.flag ??= 'UC';
      closeSocketGracefully(client);
    });
    upstream.once('close', () => {
      x.flag ??= 'UC';
      closeSocketGracefully(client);
    });
    upstream.on('data', (chunk: Buffer) => (x.bytesOut += chunk.length));
    client.on('data', (chunk: Buffer) => (x.bytesIn += chunk.length));
    // Bytes each side sent before the switch are the tunnel's first.
    const upstreamHead = attempt.upgradedHead;
    if (upstreamHead !== undefined && upstreamHead.length > 0) upstream.unshift(upstreamHead);
    if (x.head.length > 0) client.unshift(x.head);
    upstream.pipe(client).pipe(upstream);
    // Any byte read or written on the client socket (the same bytes as on the upstream one)
    // restarts the idle clock.
    client.setTimeout(x.route.websocket.idleTimeoutMs);
    client.once('timeout', () => {
      x.flag = 'SI';
      destroyBoth(x);
    });
  }

  /** The app answered the upgrade with something else than 101: relay it, then close both sides. */
  private relay(x: Tunnel, attempt: TunnelAttempt): void {
    const res = attempt.response!;
    const client = x.socket;
    this.markAnswered(x, res.statusCode ?? ERROR_STATUS.UPSTREAM_PROTOCOL_ERROR);
    if (client.destroyed) {
      attempt.destroy();
      return;
    }
    // The body is relayed decoded and delimited by the end of the connection.
    const headers = relayedHeaders(x, res.rawHeaders);
    headers.push('connection', 'close');
    writeResponseHead(client, res.statusCode ?? 502, res.statusMessage ?? '', headers);
    const closeBoth = (): void => {
      attempt.request.destroy();
      closeSocketGracefully(client);
    };
    // The relayed refusal's body is what the client receives: bytes_out of the log line.
    res.on('data', (chunk: Buffer) => {
      x.bytesOut += chunk.length;
      if (!client.write(chunk)) {
        res.pause();
        client.once('drain', () => res.resume());
      }
    });
    res.once('end', closeBoth);
    res.once('close', closeBoth);
  }

  override onFailure(x: Tunnel, failure: AttemptFailure): void {
    if (x.answered) {
      destroyBoth(x);
      return;
    }
    this.answerLocally(x, failure.code, failure.message);
  }

  override onRefused(x: Tunnel, code: ErrorCode, message: string): void {
    // The route's own policies (rate limit) count their refusals in their own metrics.
    if (!ROUTE_POLICY_REFUSALS.has(code)) x.services.metrics.circuitRejections.labels(x.cluster.config.name, code.toLowerCase()).inc();
    this.answerLocally(x, code, message);
  }

  override onClientTimeout(x: Tunnel, message: string): void {
    this.answerLocally(x, 'REQUEST_TIMEOUT', message);
  }

  /** The app's side of the open tunnel failed. */
  private upstreamFailed(x: Tunnel): void {
    x.flag ??= 'UC';
    destroyBoth(x);
  }

  onClientError(x: Tunnel): void {
    x.flag ??= 'DC';
    destroyBoth(x);
  }

  /** The client half-closed: after the upgrade the app gets the FIN; before it, the client is gone. */
  onClientEnd(x: Tunnel): void {
    if (x.upgraded) {
      x.flag ??= 'DC';
      if (x.upstreamSocket !== undefined) closeSocketGracefully(x.upstreamSocket);
    } else if (!x.answered) {
      this.clientLeft(x);
      destroyBoth(x);
    }
  }

  onClientClose(x: Tunnel): void {
    x.clientOpen = false;
    if (x.upgraded) {
      x.flag ??= 'DC';
      if (x.upstreamSocket !== undefined) closeSocketGracefully(x.upstreamSocket);
    } else if (!x.answered) {
      // Gone during the handshake (or while it waited for a slot or a backoff): nobody will read the answer.
      this.clientLeft(x);
    } else {
      x.handler?.destroy();
    }
    this.maybeFinish(x);
  }

  onUpstreamSocketClosed(x: Tunnel): void {
    this.maybeFinish(x);
  }

  shutdown(x: Tunnel): void {
    x.errorCode ??= 'DRAINING';
    destroyBoth(x);
  }

  private clientLeft(x: Tunnel): void {
    if (x.clientGone) return;
    x.flag = 'DC';
    x.clientGone = true;
    x.abandoned = true;
    // Releases the slot or the place in its queue, the backoff, and drops a running handshake.
    this.endChain(x);
  }

  private answerLocally(x: Tunnel, code: ErrorCode, message: string | undefined): void {
    x.errorCode = code;
    x.responseStarted = true;
    this.markAnswered(x, ERROR_STATUS[code]);
    const socket = x.socket;
    if (socket.destroyed) return;
    const res = responseOnSocket(x.req, socket);
    const extra = x.extraResponseHeaders;
    for (let i = 0; i < extra.length; i += 2) res.setHeader(extra[i], extra[i + 1]);
    x.bytesOut += sendError(res, code, x.requestId, message, { close: true, headers: x.rateLimitHeaders });
  }

  private markAnswered(x: Tunnel, status: number): void {
    x.answered = true;
    x.status = status;
    x.services.metrics.websocketUpgrades.labels(x.listener.name, x.route.name, x.cluster.config.name, String(status)).inc();
  }

  /** The one place the chain's steps are told the tunnel is over. */
  private endChain(x: Tunnel): void {
    if (x.chainEnded) return;
    x.chainEnded = true;
    this.next!.onEnd(x);
  }

  /** The tunnel is over once the client socket and every socket to the app have closed. */
  private maybeFinish(x: Tunnel): void {
    if (x.finished || x.clientOpen || x.upstreamSocketsOpen > 0) return;
    x.finished = true;
    this.endChain(x);
    x.websockets.closed(x);
    // Never answered: the client left during the handshake.
    if (!x.answered) this.markAnswered(x, 499);
    const { metrics, accessLog } = x.services;
    const clusterName = x.cluster.config.name;
    if (x.upgraded) {
      metrics.websocketTunnelsActive.labels(x.listener.name, clusterName).dec();
      metrics.websocketTunnelBytes.labels(clusterName, 'upstream').inc(x.bytesIn);
      metrics.websocketTunnelBytes.labels(clusterName, 'downstream').inc(x.bytesOut);
    }
    const entry = accessLogEntry(
      {
        method: x.req.method ?? 'GET',
        path: x.req.url,
        listenerName: x.listener.name,
        routeName: x.route.name,
        clusterName,
        requestId: x.requestId,
        status: x.status,
        upstreamMs: x.upstreamMs,
        bytesIn: x.bytesIn,
        bytesOut: x.bytesOut,
        attempts: x.attempt,
        errorCode: x.errorCode,
        upstreamUrl: x.endpoint?.config.url,
      },
      performance.now() - x.startedAt,
      x.flag,
      x.trace,
    );
    entry.upgrade = 'websocket';
    accessLog.write(entry);
    x.trace.end({
      status: x.status,
      route: x.route.name,
      cluster: clusterName,
      errorCode: x.errorCode,
      flags: x.flag,
      tunnelBytes: { in: x.bytesIn, out: x.bytesOut },
    });
  }
}

/** The app's response headers under the route's response policy, plus x-request-id and the sidecar's own. */
function relayedHeaders(x: Tunnel, rawHeaders: readonly string[]): string[] {
  const raw = rawHeaders.map((value) => Buffer.from(value, 'latin1'));
  const headers = downstreamResponseHeaders(raw, x.route.responseHeaders, x.requestId);
  headers.push(...x.extraResponseHeaders);
  return headers;
}

function destroyBoth(x: Tunnel): void {
  x.socket.destroy();
  x.handler?.destroy();
  x.upstreamSocket?.destroy();
}
