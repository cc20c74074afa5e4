import type { IncomingMessage } from 'node:http';
import { normalizePath, splitTarget } from './path';

/**
 * Checks the parts of a request Node's parser lets through but a proxy must not relay as
 * they are, because the sidecar and the app could read them differently. Node's strict
 * parser already refuses Content-Length with Transfer-Encoding, repeated Content-Length,
 * obs-fold, bare CR/LF and bad chunk sizes (those never reach the handler).
 */
export type CheckedRequest =
  | { readonly ok: true; /** Normalised path (see path.ts). */ readonly path: string; /** `?...` as received, or ''. */ readonly query: string }
  | { readonly ok: false; readonly reason: string };

/** RFC 3986 host (IP literal, IPv4 or reg-name) with an optional port. */
const VALID_HOST = /^(?:\[[0-9A-Za-z:.%_~-]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?$/;
const ABSOLUTE_FORM = /^https?:\/\//i;

export function checkRequest(req: IncomingMessage): CheckedRequest {
  const hostProblem = checkHost(req);
  if (hostProblem !== undefined) return { ok: false, reason: hostProblem };

  const transferEncoding = req.headers['transfer-encoding'];
  if (transferEncoding !== undefined) {
    // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
    if (req.httpVersion === '1.0') return { ok: false, reason: 'an HTTP/1.0 request cannot use Transfer-Encoding' };
    // Other codings cannot be relayed: the app would get the coded bytes without knowing.
    if (transferEncoding.trim().toLowerCase() !== 'chunked') {
      return { ok: false, reason: `unsupported Transfer-Encoding "${transferEncoding}"; only "chunked" is accepted` };
    }
  }

  let target = req.url ?? '/';
  if (ABSOLUTE_FORM.test(target)) {
    const origin = originForm(target, req.headers.host);
    if (typeof origin !== 'string') return origin;
    target = origin;
  }
  const { path, query } = splitTarget(target);
  if (query.includes('#')) return { ok: false, reason: 'the request target holds a fragment ("#"); fragments are never sent' };
  const normalized = normalizePath(path);
  if (!normalized.ok) return normalized;
  return { ok: true, path: normalized.path, query };
}

/** RFC 9112 §3.2: exactly one Host line, with a valid value. */
function checkHost(req: IncomingMessage): string | undefined {
  let count = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 4 && raw[i].toLowerCase() === 'host') count++;
  }
  if (count > 1) return 'the request has more than one Host header';
  const host = req.headers.host;
  if (host === undefined && req.httpVersion === '1.1') return 'an HTTP/1.1 request needs a Host header';
  if (host !== undefined && !VALID_HOST.test(host)) return 'the Host header is not a valid host[:port]';
  return undefined;
}

/**
 * `http://host/path?q` → `/path?q`. RFC 9112 §3.2 requires the Host header to equal the
 * target's authority; a request where they differ would be routed by one and served by the
 * other, so it is refused.
 */
function originForm(target: string, hostHeader: string | undefined): string | { readonly ok: false; readonly reason: string } {
  const authorityStart = target.indexOf('//') + 2;
  let authorityEnd = target.length;
  for (const stop of ['/', '?', '#']) {
    const at = target.indexOf(stop, authorityStart);
    if (at !== -1 && at < authorityEnd) authorityEnd = at;
  }
  const authority = target.slice(authorityStart, authorityEnd);
  if (authority.includes('@')) return { ok: false, reason: 'the request target holds user information ("@")' };
  if (hostHeader === undefined || authority.toLowerCase() !== hostHeader.toLowerCase()) {
    return { ok: false, reason: 'the Host header must equal the authority of an absolute request target' };
  }
  const rest = target.slice(authorityEnd);
  return rest.startsWith('/') ? rest : '/' + rest;
}
