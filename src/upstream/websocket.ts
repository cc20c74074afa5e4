import http, { type ClientRequest, type OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { EndpointRuntime } from './cluster';

/**
 * WebSocket tunnels, the upstream side: the handshake request to an endpoint, and the
 * process's record of open tunnels and of the sockets to apps they hold (for drain, shutdown
 * and the tests that check nothing is left behind). The tunnel itself (src/pipeline/tunnel.ts)
 * goes through the route's chain like any request.
 *
 * The handshake is a plain node:http request on a connection of its own (no pool: the
 * connection becomes the tunnel). http-proxy's ws pass was dropped for it: it ends the
 * client's socket on any handshake error, so a failed connect could not be retried to
 * another endpoint, and it relays a non-101 answer itself, so no policy could see it first.
 */

/** What the registry can do with an open tunnel. */
export interface OpenTunnel {
  /** Cuts both sockets (shutdown): a tunnel has no request boundary to drain at. */
  shutdown(): void;
}

/** The open tunnels of the process (handshakes included) and their sockets to apps. */
export class WebSocketProxy {
  private readonly tunnels = new Set<OpenTunnel>();
  private readonly upstreamSockets = new Set<Socket>();

  opened(tunnel: OpenTunnel): void {
    this.tunnels.add(tunnel);
  }

  closed(tunnel: OpenTunnel): void {
    this.tunnels.delete(tunnel);
  }

  trackUpstreamSocket(socket: Socket): void {
    this.upstreamSockets.add(socket);
    socket.once('close', () => this.upstreamSockets.delete(socket));
  }

  /** Tunnels not yet closed on both sides (handshakes included). */
  get openTunnels(): number {
    return this.tunnels.size;
  }

  /** Sockets to apps that are still open, handshakes and tunnels together. */
  get openUpstreamSockets(): number {
    return this.upstreamSockets.size;
  }

  /** Cuts every tunnel (shutdown). */
  closeAll(): void {
    for (const tunnel of this.tunnels) tunnel.shutdown();
  }
}

/**
 * Sends the upgrade request to a plain http:// endpoint on a new connection. `headers` is the
 * flat [name, value, ...] list the app receives; the Connection and Upgrade headers the
 * handshake needs are added here. The response header limit is the cluster's, as for every
 * other request. The caller listens to 'socket', 'response', 'upgrade' and 'error'.
 */
export function sendUpgradeRequest(endpoint: EndpointRuntime, path: string, headers: readonly string[], upgrade: string, maxHeaderSize: number): ClientRequest {
  const target = new URL(endpoint.config.url);
  return http.request({
    // A named endpoint's runtime is one of its resolved addresses.
    host: endpoint.address ?? target.hostname.replace(/^\[|\]$/g, ''),
    port: Number(target.port) || 80,
    method: 'GET',
    path,
    headers: headerObject(headers, ['connection', 'Upgrade', 'upgrade', upgrade]),
    agent: false,
    maxHeaderSize,
  });
}

/** Writes a response head on a raw socket: the status line and a flat [name, value, ...] list. */
export function writeResponseHead(socket: Socket, status: number, statusText: string, headers: readonly string[]): void {
  let head = `HTTP/1.1 ${status} ${statusText}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  socket.write(head + '\r\n');
}

/** Keep-alive probes and no Nagle delay on both sockets of a tunnel; no idle timeout of Node's own. */
export function prepareTunnelSocket(socket: Socket): void {
  socket.setTimeout(0);
  socket.setNoDelay(true);
  socket.setKeepAlive(true, 0);
}

/**
 * A flat [name, value, ...] list as node:http's header object; repeated names become arrays
 * (written as separate header lines).
 */
function headerObject(list: readonly string[], extra: readonly string[]): OutgoingHttpHeaders {
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
