import type { Server } from 'node:net';
import type { Socket } from 'node:net';
import { ipInCidrs } from '../config/cidr';
import { LISTENER_NEAR_CAPACITY_PERCENT, SILENT_CONNECTION_TIMEOUT_NEAR_CAPACITY_MS } from '../config/defaults';
import type { ListenerConfig } from '../config/types';

/** Why a connection was closed by the listener before it carried a request. */
export type ConnectionDropReason =
  /** The peer address already held maxConnectionsPerPeer connections. */
  | 'per_peer_limit'
  /** The listener held maxConnections (Node closes it at accept). */
  | 'max_connections'
  /** It had sent nothing for SILENT_CONNECTION_TIMEOUT_NEAR_CAPACITY_MS while the listener was near capacity. */
  | 'silent_near_capacity';

/** Where the listener reports the connections it drops (metrics, in the sidecar). */
export type ConnectionDropObserver = (reason: ConnectionDropReason) => void;

/** How often the silent connections are looked for while the listener is near capacity. */
const NEAR_CAPACITY_SWEEP_INTERVAL_MS = 250;

/**
 * Open connections per peer address: what the per-peer limit compares against. Keyed by the
 * address text Node reports (an IPv4 peer of a dual-stack listener is `::ffff:a.b.c.d`
 * every time, so one host keeps one key).
 */
export class PeerConnectionCounts {
  private readonly counts = new Map<string, number>();

  of(peer: string): number {
    return this.counts.get(peer) ?? 0;
  }

  add(peer: string): void {
    this.counts.set(peer, this.of(peer) + 1);
  }

  remove(peer: string): void {
    const left = this.of(peer) - 1;
    if (left > 0) this.counts.set(peer, left);
    else this.counts.delete(peer);
  }
}

/**
 * Keeps the connection slots of a listener for clients that use them:
 * - a peer address holds at most `maxConnectionsPerPeer` connections (peers in
 *   trustedProxies are exempt: a load balancer in front carries many clients from one
 *   address); one more is closed at accept;
 * - from LISTENER_NEAR_CAPACITY_PERCENT of `maxConnections` on, a connection that has not
 *   sent a single byte (no request line, no TLS ClientHello) for
 *   SILENT_CONNECTION_TIMEOUT_NEAR_CAPACITY_MS is closed, rather than after headersTimeout
 *   (HAProxy does the same under load): idle sockets cannot keep new clients out for long.
 * At maxConnections itself Node closes new connections at accept; they are reported too.
 *
 * Nothing here runs per request; per connection it is one map update at accept and close.
 */
export class ListenerConnectionGuard {
  private readonly peers = new PeerConnectionCounts();
  private sweepTimer: NodeJS.Timeout | undefined;

  /**
   * `sockets` are the listener's open connections with the time each was accepted
   * (Date.now()), in accept order; `config` is read at each use, so a reload's new limits
   * apply to the next connection.
   */
  constructor(
    private readonly sockets: ReadonlyMap<Socket, number>,
    private readonly config: () => Pick<ListenerConfig, 'maxConnections' | 'maxConnectionsPerPeer' | 'trustedProxies'>,
    private readonly observe: ConnectionDropObserver,
  ) {}

  /** Node's own refusal at maxConnections ('drop' is emitted instead of 'connection'). */
  attach(server: Server): void {
    server.on('drop', () => this.observe('max_connections'));
  }

  /**
   * A connection was accepted (it is already in `sockets`). False: it was refused and
   * destroyed, and must not be tracked further.
   */
  admit(socket: Socket): boolean {
    const peer = socket.remoteAddress;
    // Already closed by the peer: nothing to count.
    if (peer === undefined) return true;
    const config = this.config();
    if (this.peers.of(peer) >= config.maxConnectionsPerPeer && !ipInCidrs(peer, config.trustedProxies)) {
      socket.destroy();
      this.observe('per_peer_limit');
      return false;
    }
    this.peers.add(peer);
    socket.once('close', () => this.peers.remove(peer));
    if (this.sweepTimer === undefined && this.nearCapacity()) this.scheduleSweep();
    return true;
  }

  stop(): void {
    clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  private nearCapacity(): boolean {
    return this.sockets.size * 100 >= this.config().maxConnections * LISTENER_NEAR_CAPACITY_PERCENT;
  }

  private scheduleSweep(): void {
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined;
      if (!this.nearCapacity()) return;
      this.closeSilentConnections();
      if (this.nearCapacity()) this.scheduleSweep();
    }, NEAR_CAPACITY_SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
  }

  private closeSilentConnections(): void {
    const acceptedBefore = Date.now() - SILENT_CONNECTION_TIMEOUT_NEAR_CAPACITY_MS;
    for (const [socket, acceptedAt] of this.sockets) {
      // Accept order: every later connection is younger still.
      if (acceptedAt > acceptedBefore) break;
      // bytesRead counts what the kernel handed over, whoever reads it (Node's HTTP parser
      // or the TLS layer): 0 means the peer has sent nothing at all.
      if (socket.bytesRead === 0 && !socket.destroyed) {
        socket.destroy();
        this.observe('silent_near_capacity');
      }
    }
  }
}
