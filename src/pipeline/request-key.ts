import type { RequestKey } from '../config/types';
import { clientAddress } from '../proxy/client-address';
import type { Exchange } from './exchange';

/** The key of requests without the header a `header:<name>` key reads: they share one. */
export const NO_HEADER_KEY = '\u0000none';

/** A request's value of a key (`client`, `route`, `header:<name>`), for rate limits and hashing. */
export function requestKeyValue(x: Exchange, key: RequestKey): string {
  if (key.kind === 'route') return x.route.name;
  if (key.kind === 'header') {
    const value = x.req.headers[key.header];
    if (value === undefined) return NO_HEADER_KEY;
    return Array.isArray(value) ? value.join(',') : value;
  }
  return clientAddress(x.peer, x.req.headers['x-forwarded-for'], x.listener.config.trustedProxies);
}
