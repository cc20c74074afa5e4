import type { IncomingMessage } from 'node:http';
import type { CidrBlock, RequestKey } from '../config/types';
import { clientAddress, type PeerFacts } from '../proxy/client-address';
import type { ChainContext } from './context';

/** The key of requests without the header a `header:<name>` key reads: they share one. */
export const NO_HEADER_KEY = '\u0000none';

/** A request's value of a key (`client`, `route`, `header:<name>`), for rate limits and hashing. */
export function requestKeyValue(x: ChainContext, key: RequestKey): string {
  return keyValueOf(key, x.req, x.peer, x.listener.config.trustedProxies, x.route.name);
}

/** The same, before the exchange exists (the router's choice of a weighted cluster). */
export function keyValueOf(key: RequestKey, req: IncomingMessage, peer: PeerFacts, trustedProxies: readonly CidrBlock[], routeName: string): string {
  if (key.kind === 'route') return routeName;
  if (key.kind === 'header') {
    const value = req.headers[key.header];
    if (value === undefined) return NO_HEADER_KEY;
    return Array.isArray(value) ? value.join(',') : value;
  }
  return clientAddress(peer, req.headers['x-forwarded-for'], trustedProxies);
}
