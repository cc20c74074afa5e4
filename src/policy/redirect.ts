import type { RedirectAction } from '../config/types';

/** The request URL as the listener received it, normalised (request-guard.ts). */
export interface RequestUrl {
  readonly scheme: 'http' | 'https';
  /** Lower-case host; IPv6 in brackets. '' when the request named none. */
  readonly host: string;
  /** The authority as received (host with its port, if any), or undefined. */
  readonly authority: string | undefined;
  /** The normalised path. */
  readonly path: string;
  /** `?...` or ''. */
  readonly query: string;
}

const DEFAULT_PORTS: Readonly<Record<RequestUrl['scheme'], number>> = { http: 80, https: 443 };

/** The port written in an authority (`host:8080` → 8080), or undefined when none is. */
export function authorityPort(host: string, authority: string | undefined): number | undefined {
  if (authority === undefined || authority.length <= host.length + 1) return undefined;
  const port = Number(authority.slice(host.length + 1));
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

/**
 * The Location of a `redirect` route. Parts the route leaves out are the request's; when
 * only the scheme changes, the port becomes the new scheme's default (http://x:80 →
 * https://x, never https://x:80). The query is always kept. `matchedPrefix` is the route's
 * prefix (for `prefixRewrite`). Undefined when the target would have no host (the request
 * named none and the route sets none).
 */
export function redirectLocation(redirect: RedirectAction, url: RequestUrl, matchedPrefix: string | undefined): string | undefined {
  const scheme = redirect.scheme ?? url.scheme;
  const host = redirect.host ?? url.host;
  // An HTTP/1.0 request without Host names no host to send the client back to.
  if (host === '') return undefined;
  const requestPort = authorityPort(url.host, url.authority);
  const port = redirect.port ?? (scheme !== url.scheme || redirect.host !== undefined ? undefined : requestPort);
  let path = url.path;
  if (redirect.path !== undefined) path = redirect.path;
  else if (redirect.prefixRewrite !== undefined && matchedPrefix !== undefined) path = replacePrefix(matchedPrefix, redirect.prefixRewrite, url.path);
  return `${scheme}://${host}${port === undefined || port === DEFAULT_PORTS[scheme] ? '' : `:${port}`}${path}${url.query}`;
}

function replacePrefix(prefix: string, replacement: string, path: string): string {
  const rest = path.slice(prefix.length);
  const joined = replacement.endsWith('/') && rest.startsWith('/') ? replacement + rest.slice(1) : replacement + rest;
  return joined.startsWith('/') ? joined : '/' + joined;
}
