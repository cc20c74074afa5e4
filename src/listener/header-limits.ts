import type { ListenerConfig } from '../config/types';

/**
 * The header-count caps handed to Node, derived from the listener's `maxHeaderCount`. Node's
 * own caps do not refuse a request: HTTP/1 keeps the first `maxHeadersCount` headers and drops
 * the rest silently (a Content-Length past the cut vanishes, and the body with it); HTTP/2
 * resets the stream (ENHANCE_YOUR_CALM). HTTP/1's is set one field above the listener's limit,
 * so every request over the limit reaches the request guard as such and is answered 431,
 * never forwarded cut short. HTTP/2's is twice the limit: a request moderately over it gets
 * the same 431, one far over it is reset before its headers are even kept.
 */

/** Pseudo-header fields an HTTP/2 request may carry (:method, :scheme, :authority, :path, :protocol). */
const HTTP2_MAX_PSEUDO_HEADERS = 5;

/** `maxHeadersCount` of an HTTP/1 server (headers, not raw entries). */
export function http1HeaderCap(config: Pick<ListenerConfig, 'maxHeaderCount'>): number {
  return config.maxHeaderCount + 1;
}

/** `maxHeaderListPairs` of an HTTP/2 server: it counts the pseudo-headers too. */
export function http2HeaderPairsCap(config: Pick<ListenerConfig, 'maxHeaderCount'>): number {
  return 2 * config.maxHeaderCount + HTTP2_MAX_PSEUDO_HEADERS;
}
