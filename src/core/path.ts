/**
 * Request path normalisation. The path a route is matched against is the path the app
 * receives, so a route can only be bypassed if the app reads a path differently from the
 * sidecar; the rules below remove the spellings on which common servers disagree.
 *
 * The rule, applied once per request to the path (the query string is passed on untouched):
 * 1. Percent-encoded unreserved characters (RFC 3986 §2.3: letters, digits, `-._~`) are
 *    decoded (`%2e` → `.`, `%41` → `A`); every other escape is kept, with its hex digits
 *    upper-cased (`%2f` → `%2F`). An encoded slash (`%2F`) or backslash (`%5C`) is therefore
 *    never decoded: it stays one character of a segment, as in Envoy's default.
 * 2. Runs of slashes are merged (`//a///b` → `/a/b`).
 * 3. Dot segments are removed (RFC 3986 §5.2.4): `/a/./b/../c` → `/a/c`; `..` never climbs
 *    above the root (`/../a` → `/a`).
 * 4. Refused, because servers read them differently: a raw backslash (WHATWG URL parsers
 *    treat it as `/`), a fragment (`#`), a malformed escape (`%zz`, `%4`), and any byte that
 *    is not visible ASCII.
 */

export type NormalizedPath = { readonly ok: true; readonly path: string } | { readonly ok: false; readonly reason: string };

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const BACKSLASH = 0x5c;
const HASH = 0x23;

/** Normalises an origin-form path (starting with `/`, without the query string). */
export function normalizePath(path: string): NormalizedPath {
  if (path.charCodeAt(0) !== SLASH) return { ok: false, reason: 'the request target must start with "/"' };
  // Fast path: nothing to decode, merge or remove leaves the path as it is.
  let needsWork = false;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return { ok: false, reason: 'the request path holds a character that is not visible ASCII' };
    if (c === BACKSLASH) return { ok: false, reason: 'the request path holds a backslash; send "/" or "%5C"' };
    if (c === HASH) return { ok: false, reason: 'the request target holds a fragment ("#"); fragments are never sent' };
    // An escape, `//`, or a segment that starts with a dot may change under the rules above.
    if (c === PERCENT || ((c === SLASH || c === DOT) && path.charCodeAt(i - 1) === SLASH)) needsWork = true;
  }
  if (!needsWork) return { ok: true, path };

  const decoded = decodeUnreserved(path);
  if (decoded === undefined) return { ok: false, reason: 'the request path holds a malformed percent-encoding' };
  return { ok: true, path: removeDotSegments(decoded) };
}

/** Splits a request target into path and query (the query keeps its leading `?`, or is ''). */
export function splitTarget(target: string): { readonly path: string; readonly query: string } {
  const at = target.indexOf('?');
  return at === -1 ? { path: target, query: '' } : { path: target.slice(0, at), query: target.slice(at) };
}

/** Decodes escapes of unreserved characters and upper-cases the others; undefined for a malformed escape. */
function decodeUnreserved(path: string): string | undefined {
  if (!path.includes('%')) return path;
  let out = '';
  let from = 0;
  for (let i = path.indexOf('%'); i !== -1; i = path.indexOf('%', i)) {
    const high = hexValue(path.charCodeAt(i + 1));
    const low = hexValue(path.charCodeAt(i + 2));
    if (high < 0 || low < 0) return undefined;
    const byte = high * 16 + low;
    out += path.slice(from, i) + (isUnreserved(byte) ? String.fromCharCode(byte) : path.slice(i, i + 3).toUpperCase());
    i += 3;
    from = i;
  }
  return out + path.slice(from);
}

/** Merges slashes and resolves `.` and `..` segments; keeps a trailing slash. */
function removeDotSegments(path: string): string {
  const segments = path.split('/');
  const out: string[] = [];
  let trailingSlash = false;
  // segments[0] is the empty text before the leading slash.
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i];
    const last = i === segments.length - 1;
    if (segment === '' || segment === '.') {
      if (last) trailingSlash = true;
    } else if (segment === '..') {
      out.pop();
      if (last) trailingSlash = true;
    } else {
      out.push(segment);
    }
  }
  if (out.length === 0) return '/';
  return '/' + out.join('/') + (trailingSlash ? '/' : '');
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

function isUnreserved(byte: number): boolean {
  return (
    (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) ||
    byte === 0x2d || byte === 0x2e || byte === 0x5f || byte === 0x7e
  );
}
