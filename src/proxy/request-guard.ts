import type { IncomingMessage } from 'node:http';
import type { ListenerConfig } from '../config/types';
import { normalizeAuthority } from './authority';
import { requestAuthority } from './http2-request';
import { normalizePath, splitTarget } from '../core/path';

/**
 * Checks the parts of a request Node's parser lets through but a proxy must not relay as
 * they are, because the sidecar and the app could read them differently. Node's strict
 * parser already refuses Content-Length with Transfer-Encoding, repeated Content-Length,
 * obs-fold, bare CR/LF, bad chunk sizes and (HTTP/1) unknown or lower-case methods (those
 * never reach the handler).
 */
export type CheckedRequest = AcceptedRequest | RefusedRequest;

export interface AcceptedRequest {
  readonly ok: true;
  /** Normalised path (see path.ts). */
  readonly path: string;
  /** `?...` as received, or ''. */
  readonly query: string;
  /** Lower-case host without port or trailing dot, '' when the request names none (see authority.ts). */
  readonly host: string;
  /** The Host the app receives (normalised, with its port), or undefined when the request has none. */
  readonly authority: string | undefined;
  /** Request headers whose names hold `_` (0 unless the listener drops them). */
  readonly underscoreHeaders: number;
}

export interface RefusedRequest {
  readonly ok: false;
  readonly code: 'BAD_REQUEST' | 'HEADERS_TOO_LARGE' | 'METHOD_NOT_ALLOWED';
  readonly reason: string;
}

/** The listener settings the guard applies. */
export type RequestPolicy = Pick<ListenerConfig, 'maxHeaderCount' | 'headersWithUnderscores' | 'pathMatching'>;

/** RFC 3986 host (IP literal, IPv4 or reg-name) with an optional port. */
export const VALID_HOST = /^(?:\[[0-9A-Za-z:.%_~-]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?$/;
const ABSOLUTE_FORM = /^https?:\/\//i;
/** RFC 9110 §9.1 token; every method the sidecar forwards is one (HTTP/2 does not check). */
const METHOD_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const LOWER_CASE_LETTER = /[a-z]/;
/** `.;` or `..;` as a segment's start: Tomcat and Jetty strip the parameter and read a dot segment. */
const DOT_SEGMENT_WITH_PARAMETERS = /\/\.\.?;/;
const COLON = 0x3a;

function refused(code: RefusedRequest['code'], reason: string): RefusedRequest {
  return { ok: false, code, reason };
}

export function checkRequest(req: IncomingMessage, policy: RequestPolicy): CheckedRequest {
  // HTTP/0.9 (`GET /` without a version) has no headers and no framing; Node's parser takes it.
  if (req.httpVersionMajor === 0) return refused('BAD_REQUEST', 'HTTP/0.9 requests are not accepted; send HTTP/1.0 or later');
  const method = req.method ?? '';
  const methodProblem = checkMethod(method, req.httpVersionMajor === 2);
  if (methodProblem !== undefined) return methodProblem;

  const underscored = scanHeaders(req.rawHeaders, policy);
  if (typeof underscored !== 'number') return underscored;
  const rawAuthority = requestAuthority(req);
  if (rawAuthority === undefined && req.httpVersion === '1.1') return refused('BAD_REQUEST', 'an HTTP/1.1 request needs a Host header');
  const authority = rawAuthority === undefined ? undefined : checkAuthority(req, rawAuthority);
  if (authority === null) return refused('BAD_REQUEST', 'the Host header is not a valid host[:port]');

  const transferEncoding = req.headers['transfer-encoding'];
  if (transferEncoding !== undefined) {
    // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
    if (req.httpVersion === '1.0') return refused('BAD_REQUEST', 'an HTTP/1.0 request cannot use Transfer-Encoding');
    // Other codings cannot be relayed: the app would get the coded bytes without knowing.
    if (transferEncoding.trim().toLowerCase() !== 'chunked') {
      return refused('BAD_REQUEST', `unsupported Transfer-Encoding "${transferEncoding}"; only "chunked" is accepted`);
    }
  }

  let target = req.url ?? '/';
  if (ABSOLUTE_FORM.test(target)) {
    const origin = originForm(target, req.headers.host);
    if (typeof origin !== 'string') return origin;
    target = origin;
  }
  const { path, query } = splitTarget(target);
  if (query.includes('#')) return refused('BAD_REQUEST', 'the request target holds a fragment ("#"); fragments are never sent');
  const normalized = normalizePath(path);
  if (!normalized.ok) return refused('BAD_REQUEST', normalized.reason);
  if (normalized.path.includes(';')) {
    if (policy.pathMatching.rejectPathParameters) {
      return refused('BAD_REQUEST', 'the request path holds ";" (path parameters); this listener refuses them (pathMatching.rejectPathParameters)');
    }
    if (DOT_SEGMENT_WITH_PARAMETERS.test(normalized.path)) {
      return refused('BAD_REQUEST', 'the request path holds a dot segment with parameters ("..;" or ".;"), which servlet containers read as a dot segment');
    }
  }
  return {
    ok: true,
    path: normalized.path,
    query,
    host: authority?.host ?? '',
    authority: authority?.authority,
    underscoreHeaders: underscored,
  };
}

/**
 * TRACE echoes the request, cookies and credentials included, to whoever can make a browser
 * send it (cross-site tracing); TRACK is IIS's spelling. HTTP/1 methods come from Node's
 * parser (known, upper-case); an HTTP/2 `:method` is any string nghttp2 let through.
 */
/**
 * The Allow header of the 405 that TRACE and TRACK get (RFC 9110 §15.5.6 requires one). Any
 * other method is forwarded, so the list names the standard ones the app may serve.
 */
export const ALLOW_FORWARDED_METHODS = 'GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS';

function checkMethod(method: string, http2: boolean): RefusedRequest | undefined {
  if (method === 'TRACE' || method === 'TRACK') return refused('METHOD_NOT_ALLOWED', `${method} is never forwarded`);
  if (!http2) return undefined;
  if (!METHOD_TOKEN.test(method)) return refused('BAD_REQUEST', 'the :method is not a valid method token');
  // Methods are case-sensitive (RFC 9110 §9.1) and routes name them in upper case, so
  // `delete` would miss a `methods: [DELETE]` route and reach an app that reads it as DELETE.
  if (LOWER_CASE_LETTER.test(method)) {
    return refused('BAD_REQUEST', `the method "${method}" holds lower-case letters; methods are case-sensitive, send ${method.toUpperCase()}`);
  }
  return undefined;
}

/**
 * One pass over the raw header list: the header count (HTTP/2 pseudo-headers excluded), the
 * Host lines, and the names holding `_`. Returns the refusal, or how many headers the
 * listener drops for their `_` (0 unless headersWithUnderscores is drop).
 */
function scanHeaders(raw: readonly string[], policy: RequestPolicy): RefusedRequest | number {
  const findUnderscores = policy.headersWithUnderscores !== 'allow';
  let fields = 0;
  let hostLines = 0;
  let underscored = 0;
  let firstUnderscored: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.charCodeAt(0) === COLON) continue;
    fields++;
    if (name.length === 4 && name.toLowerCase() === 'host') hostLines++;
    if (findUnderscores && name.includes('_')) {
      underscored++;
      firstUnderscored ??= name;
    }
  }
  // Node keeps at most one header more than the limit (see listener/server.ts), so a request
  // whose framing header was cut off the list always lands here.
  if (fields > policy.maxHeaderCount) {
    return refused('HEADERS_TOO_LARGE', `the request has more than ${policy.maxHeaderCount} header fields (the listener's maxHeaderCount)`);
  }
  if (hostLines > 1) return refused('BAD_REQUEST', 'the request has more than one Host header');
  if (firstUnderscored !== undefined && policy.headersWithUnderscores === 'reject') {
    return refused('BAD_REQUEST', `the header name "${firstUnderscored}" holds "_"; this listener refuses such headers (headersWithUnderscores: reject)`);
  }
  return policy.headersWithUnderscores === 'drop' ? underscored : 0;
}

/**
 * RFC 9112 §3.2 grammar, then the normal form (authority.ts); null when invalid. An HTTP/2
 * request that also carries Host must name the same host (RFC 9113 §8.3.1: it is routed by
 * `:authority`, and the Host is not forwarded, but a Host that names another site is a lie).
 */
function checkAuthority(req: IncomingMessage, raw: string): ReturnType<typeof normalizeAuthority> | null {
  if (!VALID_HOST.test(raw)) return null;
  const authority = normalizeAuthority(raw);
  if (authority === undefined) return null;
  const host = req.headers.host;
  if (req.httpVersionMajor === 2 && host !== undefined && host !== raw) {
    if (!VALID_HOST.test(host) || normalizeAuthority(host)?.host !== authority.host) return null;
  }
  return authority;
}

/**
 * `http://host/path?q` → `/path?q`. RFC 9112 §3.2 requires the Host header to equal the
 * target's authority; a request where they differ would be routed by one and served by the
 * other, so it is refused.
 */
function originForm(target: string, hostHeader: string | undefined): string | RefusedRequest {
  const authorityStart = target.indexOf('//') + 2;
  let authorityEnd = target.length;
  for (const stop of ['/', '?', '#']) {
    const at = target.indexOf(stop, authorityStart);
    if (at !== -1 && at < authorityEnd) authorityEnd = at;
  }
  const authority = target.slice(authorityStart, authorityEnd);
  if (authority.includes('@')) return refused('BAD_REQUEST', 'the request target holds user information ("@")');
  if (hostHeader === undefined || authority.toLowerCase() !== hostHeader.toLowerCase()) {
    return refused('BAD_REQUEST', 'the Host header must equal the authority of an absolute request target');
  }
  const rest = target.slice(authorityEnd);
  return rest.startsWith('/') ? rest : '/' + rest;
}
