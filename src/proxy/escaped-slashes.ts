import type { EscapedSlashes } from '../config/types';
import { normalizePath } from '../core/path';

/**
 * `listeners[].escapedSlashes`: what a normalised path holding `%2F` or `%5C` gets. The
 * normal form keeps those escapes (path.ts), so the routes read `/public/..%2Fadmin` as one
 * segment under /public while an app that decodes `%2F` serves /admin: a route that denies
 * /admin is passed by. `reject` refuses such paths; `unescape-and-redirect` sends the client
 * to the path the app would read, which then meets the routes as itself.
 */
export type EscapedSlashOutcome =
  | { readonly kind: 'pass' }
  | { readonly kind: 'reject'; readonly reason: string }
  | { readonly kind: 'redirect'; readonly path: string };

const PASS: EscapedSlashOutcome = { kind: 'pass' };
/** The normal form upper-cases escapes, so these two spellings are all there is. */
const ESCAPED_SLASH = /%2F|%5C/g;

export function escapedSlashOutcome(policy: EscapedSlashes, normalizedPath: string): EscapedSlashOutcome {
  if (policy === 'keep' || !normalizedPath.includes('%')) return PASS;
  ESCAPED_SLASH.lastIndex = 0;
  if (!ESCAPED_SLASH.test(normalizedPath)) return PASS;
  if (policy === 'reject') {
    return { kind: 'reject', reason: 'the request path holds an encoded slash or backslash (%2F, %5C); this listener refuses them (escapedSlashes: reject)' };
  }
  // Both become "/": a decoded backslash is a slash to WHATWG URL parsers, and path.ts refuses raw ones.
  const decoded = normalizePath(normalizedPath.replace(ESCAPED_SLASH, '/'));
  if (!decoded.ok) return { kind: 'reject', reason: decoded.reason };
  return { kind: 'redirect', path: decoded.path };
}
