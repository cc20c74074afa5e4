import type { CorsPolicy, OriginPattern } from '../config/types';

/**
 * The CORS decisions of a route (Fetch standard, "CORS protocol"): whether an Origin is
 * allowed, and the headers of a preflight answer and of an actual response. The origin
 * echoed back is the request's own, never a pattern; `*` is sent only for a `*` origin
 * without credentials (the schema refuses `*` with credentials).
 */

/** The Access-Control-Allow-Origin value for `origin`, or undefined when the route does not allow it. */
export function allowedOrigin(policy: CorsPolicy, origin: string | undefined): string | undefined {
  if (origin === undefined) return undefined;
  const lower = origin.toLowerCase();
  for (const pattern of policy.allowOrigins) {
    if (matches(pattern, lower)) return pattern.kind === 'any' && !policy.allowCredentials ? '*' : origin;
  }
  return undefined;
}

/** `https://host[:port]`: the only scheme `*.example.com` admits, so a page served over plain HTTP cannot claim it. */
const HTTPS_ORIGIN = /^https:\/\/([a-z0-9.-]+)(?::\d{1,5})?$/;

function matches(pattern: OriginPattern, origin: string): boolean {
  switch (pattern.kind) {
    case 'any':
      return true;
    case 'exact':
      return pattern.origin === origin;
    case 'subdomain': {
      const host = HTTPS_ORIGIN.exec(origin)?.[1];
      return host !== undefined && host.length > pattern.suffix.length && host.endsWith(pattern.suffix);
    }
  }
}

/** A preflight: OPTIONS with Origin and Access-Control-Request-Method. */
export function isPreflight(method: string | undefined, origin: string | undefined, requestMethod: string | undefined): boolean {
  return method === 'OPTIONS' && origin !== undefined && requestMethod !== undefined;
}

/** The headers that make a response vary by the request's Origin: every response of a CORS route carries it. */
export const VARY_ORIGIN: readonly string[] = ['vary', 'Origin'];

/**
 * Headers of the sidecar's 204 answer to a preflight. A disallowed origin gets none of the
 * Access-Control-* headers: the browser then refuses the actual request.
 */
export function preflightHeaders(policy: CorsPolicy, allowOrigin: string | undefined): string[] {
  const headers = ['vary', 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers'];
  if (allowOrigin === undefined) return headers;
  headers.push('access-control-allow-origin', allowOrigin, 'access-control-allow-methods', policy.allowMethods.join(', '));
  if (policy.allowHeaders.length > 0) headers.push('access-control-allow-headers', policy.allowHeaders.join(', '));
  if (policy.allowCredentials) headers.push('access-control-allow-credentials', 'true');
  headers.push('access-control-max-age', String(policy.maxAgeSeconds));
  return headers;
}

/** Access-Control-* headers of an actual (non-preflight) response to an allowed origin. */
export function responseHeaders(policy: CorsPolicy, allowOrigin: string): string[] {
  const headers = ['access-control-allow-origin', allowOrigin];
  if (policy.allowCredentials) headers.push('access-control-allow-credentials', 'true');
  if (policy.exposeHeaders.length > 0) headers.push('access-control-expose-headers', policy.exposeHeaders.join(', '));
  return headers;
}

/** Response headers the app may not set on a CORS route: the sidecar's policy is the only one. */
export function isCorsResponseHeader(lowerName: string): boolean {
  return lowerName.startsWith('access-control-');
}
