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
      if (request.path !== match.value) return false;
      break;
    case 'prefix':
      if (!request.path.startsWith(match.value)) return false;
      break;
    case 'regex':
      // Compiled without the `g`/`y` flags, so `test` keeps no state between requests.
      if (!(match.regex as RegExp).test(request.path)) return false;
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
