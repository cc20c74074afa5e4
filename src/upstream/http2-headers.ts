import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';

/**
 * The header conversions of the HTTP/2 client (http2-pool.ts): the sidecar's flat
 * `[name, value, ...]` request list to a node:http2 header object, a response header object to
 * the raw `[name, value, ...]` buffers the attempt handlers read (as undici gives them), and a
 * client's request trailers to the fields that may follow a request body.
 */

/**
 * Connection-specific fields HTTP/2 forbids (RFC 9113 §8.2.2); node:http2 throws on them.
 * `te` is handled apart: `te: trailers` is the one value allowed.
 */
const CONNECTION_SPECIFIC: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host']);

/**
 * Fields never sent in request trailers: pseudo-headers and connection-specific fields (which
 * node:http2 refuses), and those RFC 9110 §6.5.1 says a sender must not put in trailers
 * because a recipient needs them before the content (framing, routing, request modifiers,
 * authentication, content description).
 */
const NOT_IN_TRAILERS: ReadonlySet<string> = new Set([
  ...CONNECTION_SPECIFIC,
  'te',
  'trailer',
  'content-length',
  'content-type',
  'content-encoding',
  'content-range',
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'expect',
  'max-forwards',
  'cache-control',
  'range',
  'if-match',
  'if-none-match',
  'if-modified-since',
  'if-unmodified-since',
  'if-range',
]);

const COLON = 0x3a;

/** The request headers as undici's dispatch options carry them: a flat list (the sidecar's) or an object. */
export type DispatchedHeaders = readonly string[] | Readonly<Record<string, string | readonly string[] | undefined>> | null | undefined;

/**
 * The header object of a request stream. `host` becomes `:authority` (the origin's host when the
 * request names none); connection-specific fields are left out, and `te` unless it is `trailers`.
 * Repeated names become one field per value (HTTP/2 carries each cookie as a field of its own).
 */
export function http2RequestHeaders(headers: DispatchedHeaders, method: string, path: string, scheme: string, defaultAuthority: string): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ':method': method, ':path': path, ':scheme': scheme, ':authority': defaultAuthority };
  const add = (rawName: string, value: string): void => {
    const name = rawName.toLowerCase();
    if (name.charCodeAt(0) === COLON) return;
    if (name === 'host') {
      out[':authority'] = value;
      return;
    }
    if (CONNECTION_SPECIFIC.has(name)) return;
    if (name === 'te' && value.trim().toLowerCase() !== 'trailers') return;
    const previous = out[name];
    if (previous === undefined) out[name] = value;
    else if (Array.isArray(previous)) previous.push(value);
    else out[name] = [String(previous), value];
  };
  if (Array.isArray(headers)) {
    const list = headers as readonly string[];
    for (let i = 0; i + 1 < list.length; i += 2) add(list[i], list[i + 1]);
  } else if (headers !== null && headers !== undefined) {
    const record = headers as Readonly<Record<string, string | readonly string[] | undefined>>;
    for (const name of Object.keys(record)) {
      const value = record[name];
      if (typeof value === 'string') add(name, value);
      else if (value !== undefined) for (const v of value) add(name, v);
    }
  }
  return out;
}

/**
 * A response header object as undici's raw header buffers, pseudo-headers left out. Latin-1 both
 * ways: node:http2 gives header values as Latin-1 strings, and the handlers read them back so.
 */
export function rawResponseHeaders(headers: IncomingHttpHeaders): Buffer[] {
  const raw: Buffer[] = [];
  for (const name of Object.keys(headers)) {
    if (name.charCodeAt(0) === COLON) continue;
    const value = headers[name];
    if (value === undefined) continue;
    const key = Buffer.from(name, 'latin1');
    if (Array.isArray(value)) {
      for (const v of value) raw.push(key, Buffer.from(v, 'latin1'));
    } else {
      raw.push(key, Buffer.from(value, 'latin1'));
    }
  }
  return raw;
}

/** A client's request trailers (lower-case names, as node gives them). */
export type RequestTrailers = Readonly<Record<string, string | readonly string[] | undefined>>;

/** The trailer fields that may go to the app after the request body; undefined when none is left. */
export function trailersToSend(trailers: RequestTrailers | undefined): OutgoingHttpHeaders | undefined {
  if (trailers === undefined) return undefined;
  let out: OutgoingHttpHeaders | undefined;
  // (An HTTP/2 header object may carry symbol keys, e.g. sensitive headers; Object.keys skips them.)
  for (const rawName of Object.keys(trailers)) {
    const name = rawName.toLowerCase();
    const value = trailers[rawName];
    if (value === undefined || name.charCodeAt(0) === COLON || NOT_IN_TRAILERS.has(name)) continue;
    (out ??= {})[name] = typeof value === 'string' ? value : [...value];
  }
  return out;
}
