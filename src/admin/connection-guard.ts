import type http from 'node:http';
import type { Socket } from 'node:net';

/** Why the admin listener closed a connection: `evicted` an idle one to let a new one in, `refused` a new one. */
export type AdminConnectionCloseReason = 'evicted' | 'refused';

export type AdminConnectionObserver = (reason: AdminConnectionCloseReason) => void;

export interface AdminConnectionLimits {
  /** Connections open at once. */
  readonly maxConnections: number;
  /** Connections one peer address may hold at once. */
  readonly maxConnectionsPerPeer: number;
}

interface AdminConnection {
  readonly peer: string;
  /** Requests being answered on it (HTTP/1.1 pipelining can queue more than one). */
  requests: number;
  /** Whether it ever carried a request: a kept-alive client (a scraper) goes after the silent ones. */
  used: boolean;
}

/**
 * The admin listener's connection slots, kept so that a probe always gets in: kubelet
 * restarts the pod when /live or /ready cannot be reached, so a full admin listener must not
 * refuse them the way a full proxy listener refuses clients.
 *
 * A new connection over the limit of its peer, or over the listener's, closes the oldest
 * connection (of that peer, or of anyone) that is not answering a request: first among those
 * that never carried one (sent nothing, or half a request), then among those waiting between
 * keep-alive requests. Only when every connection is busy answering is the new one refused. The per-peer limit keeps one client
 * from pushing out the kept-alive connections of others (a metrics scraper's).
 */
export class AdminConnectionGuard {
  /** In accept order: the first idle one found is the oldest. */
  private readonly connections = new Map<Socket, AdminConnection>();
  private readonly perPeer = new Map<string, number>();

  constructor(
    private readonly limits: AdminConnectionLimits,
    private readonly observe: AdminConnectionObserver,
  ) {}

  attach(server: http.Server): void {
    // First in line: a refused connection is destroyed before Node sets up HTTP on it.
    server.prependListener('connection', (socket: Socket) => this.admit(socket));
    server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const connection = this.connections.get(req.socket);
      if (connection === undefined) return;
      connection.requests++;
      connection.used = true;
      res.once('close', () => connection.requests--);
    });
  }

  get size(): number {
    return this.connections.size;
  }

  private admit(socket: Socket): void {
    const peer = socket.remoteAddress;
    if (peer === undefined) return;
    if ((this.perPeer.get(peer) ?? 0) >= this.limits.maxConnectionsPerPeer && !this.evictOldestIdle(peer)) {
      this.refuse(socket);
      return;
    }
    if (this.connections.size >= this.limits.maxConnections && !this.evictOldestIdle(undefined)) {
      this.refuse(socket);
      return;
    }
    this.connections.set(socket, { peer, requests: 0, used: false });
    this.perPeer.set(peer, (this.perPeer.get(peer) ?? 0) + 1);
    socket.once('close', () => this.forget(socket));
  }

  /** Closes the oldest connection (of `peer`, or of anyone) not answering a request, unused ones first; false when there is none. */
  private evictOldestIdle(peer: string | undefined): boolean {
    const victim = this.oldestIdle(peer, false) ?? this.oldestIdle(peer, true);
    if (victim === undefined) return false;
    // Forgotten now, not at 'close': the slot is free for the connection being admitted.
    this.forget(victim);
    victim.destroy();
    this.observe('evicted');
    return true;
  }

  private oldestIdle(peer: string | undefined, used: boolean): Socket | undefined {
    for (const [socket, connection] of this.connections) {
      if (connection.requests === 0 && connection.used === used && (peer === undefined || connection.peer === peer)) return socket;
    }
    return undefined;
  }

  private refuse(socket: Socket): void {
    socket.destroy();
    this.observe('refused');
  }

  private forget(socket: Socket): void {
    const connection = this.connections.get(socket);
    if (connection === undefined) return;
    this.connections.delete(socket);
    const left = (this.perPeer.get(connection.peer) ?? 1) - 1;
    if (left > 0) this.perPeer.set(connection.peer, left);
    else this.perPeer.delete(connection.peer);
  }
}
