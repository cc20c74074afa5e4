import { ipInCidrs } from '../config/cidr';
import type { CidrBlock } from '../config/types';

/** The connection's peer, computed once per connection (proxy/handler.ts). */
export interface PeerFacts {
  readonly address: string;
  /** The peer is one of the listener's trustedProxies. */
  readonly trusted: boolean;
}

/**
 * The client's address as policies key on it (rate limits, sticky hashing): the peer's
 * address, unless the peer is a trusted proxy; then the right-most X-Forwarded-For entry that
 * is not itself a trusted proxy (entries left of it were written by the client and can be
 * forged). When every entry is trusted, the left-most one.
 */
export function clientAddress(peer: PeerFacts, forwardedFor: string | string[] | undefined, trustedProxies: readonly CidrBlock[]): string {
  if (!peer.trusted || forwardedFor === undefined) return peer.address;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
  let leftMost = peer.address;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i].trim();
    if (hop === '') continue;
    if (!ipInCidrs(hop, trustedProxies)) return hop;
    leftMost = hop;
  }
  return leftMost;
}
