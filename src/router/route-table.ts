import type { RouteRegex } from '../config/route-regex';
import type { RouteConfig, RouteMatch } from '../config/types';

/** What the router looks at. `path` excludes the query string. */
export interface RoutableRequest {
  readonly method: string;
  readonly path: string;
  /** Lower-case host without port or trailing dot (proxy/authority.ts), or '' when the request has none. */
  readonly host: string;
  /** Node's lower-cased header map. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/**
 * First match wins, in the order the routes are written. Every matcher was compiled at
 * load time, so matching allocates nothing and builds no regex.
 */
export function findRoute(routes: readonly RouteConfig[], request: RoutableRequest): RouteConfig | undefined {
  for (let i = 0; i < routes.length; i++) {
    if (matches(routes[i].match, request)) return routes[i];
  }
  return undefined;
}

export function matches(match: RouteMatch, request: RoutableRequest): boolean {
  switch (match.kind) {
    case 'path':
      if (match.caseInsensitive ? !startsWithFolded(request.path, match.value, true) : request.path !== match.value) return false;
      break;
    case 'prefix':
      if (match.caseInsensitive ? !startsWithFolded(request.path, match.value, false) : !request.path.startsWith(match.value)) return false;
      break;
    case 'regex':
      // RE2 (see route-regex.ts): time linear in the path's length whatever the pattern.
      if (!(match.regex as RouteRegex).test(request.path)) return false;
      break;
  }
  if (match.methods !== undefined && !match.methods.has(request.method)) return false;
  if (match.host !== undefined && !hostMatches(match.host, request.host)) return false;
  for (let i = 0; i < match.headers.length; i++) {
    const [name, expected] = match.headers[i];
    const actual = request.headers[name];
    if (Array.isArray(actual) ? !actual.includes(expected) : actual !== expected) return false;
  }
  return true;
}

/**
 * Whether `path` starts with `lowerPrefix` (or, `whole`, equals it) ignoring ASCII case,
 * without building a lower-cased copy of the path. `lowerPrefix` is lower-case already.
 */
function startsWithFolded(path: string, lowerPrefix: string, whole: boolean): boolean {
  if (whole ? path.length !== lowerPrefix.length : path.length < lowerPrefix.length) return false;
  for (let i = 0; i < lowerPrefix.length; i++) {
    let c = path.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c !== lowerPrefix.charCodeAt(i)) return false;
  }
  return true;
}

/** `*.example.com` matches exactly one more label (`a.example.com`, not `example.com` nor `a.b.example.com`). */
export function hostMatches(pattern: string, host: string): boolean {
  if (!pattern.startsWith('*.')) return pattern === host;
  const suffix = pattern.slice(1);
  if (!host.endsWith(suffix)) return false;
  const label = host.slice(0, host.length - suffix.length);
  return label.length > 0 && !label.includes('.');
}

/**
 * The path the app receives for a prefix route with `rewritePrefix`: the matched prefix is
 * replaced, and a doubled slash at the seam is folded (`/api` + `/users` with `rewritePrefix: /`
 * gives `/users`, not `//users`).
 */
export function rewritePath(matchedPrefix: string, rewritePrefix: string, path: string): string {
  const rest = path.slice(matchedPrefix.length);
  let rewritten: string;
  if (rewritePrefix.endsWith('/') && rest.startsWith('/')) rewritten = rewritePrefix + rest.slice(1);
  else rewritten = rewritePrefix + rest;
  if (!rewritten.startsWith('/')) rewritten = '/' + rewritten;
  return rewritten;
}

/**
 * Host header without port, lower-cased; handles `[::1]:8080`. Requests are routed by the
 * fuller normal form of proxy/authority.ts (trailing dot removed too); this is for callers
 * that compare a Host with known names (the admin listener).
 */
export function hostWithoutPort(hostHeader: string | undefined): string {
  if (!hostHeader) return '';
  let host = hostHeader;
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    host = end === -1 ? host : host.slice(0, end + 1);
  } else {
    const colon = host.indexOf(':');
    if (colon !== -1) host = host.slice(0, colon);
  }
  return host.toLowerCase();
}
