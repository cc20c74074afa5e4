import { randomUUID } from 'node:crypto';
import type { HeaderMutation } from '../config/types';

/**
 * Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the ones the
 * sidecar handles itself: `expect` (Node answers `100-continue` to the client; the app gets the
 * body without waiting) and `http2-settings` (only meaningful for an h2c upgrade).
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'http2-settings',
]);

/** Headers the sidecar sets on every upstream request; a client's values are never passed on as they are. */
const SIDECAR_OWNED = new Set([
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-request-id',
  'x-sidecar-attempt',
  'x-forwarded-client-cert',
  // Set only on mirrored copies: a client must not make a real request look like a shadow one.
  'x-sidecar-shadow',
]);

export const REQUEST_ID_HEADER = 'x-request-id';
export const ATTEMPT_HEADER = 'x-sidecar-attempt';
export const ERROR_HEADER = 'x-sidecar-error';

/** `:` starts the name of an HTTP/2 pseudo-header (`:method`, `:path`, `:authority`, `:scheme`). */
const COLON = 0x3a;

/** A client-sent request id is kept when it is short, visible ASCII; anything else is replaced. */
const ACCEPTABLE_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

export function requestIdFrom(clientValue: string | string[] | undefined): string {
  if (typeof clientValue === 'string' && ACCEPTABLE_REQUEST_ID.test(clientValue)) return clientValue;
  return randomUUID();
}

/**
 * Headers a client's `Connection` cannot make hop-by-hop: the sidecar needs them to reach the
 * app (`Connection: host` would leave the app the upstream's address as Host; removing
 * Content-Length would change the body's framing). Such a nomination is ignored.
 */
const NEVER_HOP_BY_HOP = ['host', 'content-length'];

/** What nearly every `Connection` header says: it names no other header. */
const PERSISTENCE_ONLY = /^(?:keep-alive|close)$/i;

/** Names a `Connection` header lists are hop-by-hop for this message too (added to `named`). */
function connectionNamed(value: string | undefined, named?: Set<string>): Set<string> | undefined {
  if (!value || PERSISTENCE_ONLY.test(value)) return named;
  for (const token of value.split(',')) {
    const name = token.trim().toLowerCase();
    if (name && name !== 'close' && name !== 'keep-alive') (named ??= new Set()).add(name);
  }
  return named;
}

/** Every header name a mutation touches is dropped from the message before `add` sets its own value. */
const mutationDrops = new WeakMap<HeaderMutation, ReadonlySet<string>>();
function droppedBy(mutation: HeaderMutation): ReadonlySet<string> {
  let drops = mutationDrops.get(mutation);
  if (drops === undefined) {
    drops = new Set([...mutation.remove, ...mutation.add.map(([name]) => name.toLowerCase())]);
    mutationDrops.set(mutation, drops);
  }
  return drops;
}

export interface ForwardingFacts {
  /** The peer's IP address, IPv4-mapped IPv6 already folded to IPv4. */
  readonly peerAddress: string;
  /** The peer is in the listener's `trustedProxies`: its X-Forwarded-* values are kept and appended to. */
  readonly peerTrusted: boolean;
  readonly proto: 'http' | 'https';
  readonly requestId: string;
  /** Envoy-style client certificate description for mTLS connections. */
  readonly clientCert: string | undefined;
  /**
   * Trace context headers the sidecar writes per attempt while tracing is on (see
   * `replaceBeforeAttempt`); the client's copies are dropped. Undefined: passed through.
   */
  readonly traceHeaders?: ReadonlySet<string>;
  /**
   * The Host the app receives, in its normal form (see authority.ts); it replaces the
   * client's Host or HTTP/2 `:authority`. Undefined: the request named none.
   */
  readonly authority: string | undefined;
  /** A gRPC request (content-type application/grpc*): its `TE: trailers` is passed on. */
  readonly grpc?: boolean;
  /** Headers whose names hold `_` are left out (the listener's headersWithUnderscores: drop, and there are some). */
  readonly dropUnderscored?: boolean;
}

/**
 * The header list sent to the app, as undici's flat `[name, value, ...]` array. The last two
 * entries are always `x-sidecar-attempt` and its value so that a retry only rewrites the last
 * slot (see `setAttempt`).
 */
export function upstreamRequestHeaders(
  rawHeaders: readonly string[],
  facts: ForwardingFacts,
  mutation: HeaderMutation,
): string[] {
  const out: string[] = [];
  let connection: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i].length === 10 && rawHeaders[i].toLowerCase() === 'connection') connection = rawHeaders[i + 1];
  }
  const named = connectionNamed(connection);
  if (named !== undefined) for (const name of NEVER_HOP_BY_HOP) named.delete(name);
  const drops = mutation.add.length + mutation.remove.length > 0 ? droppedBy(mutation) : undefined;
  const dropUnderscored = facts.dropUnderscored === true;

  let forwardedFor: string | undefined;
  let forwardedProto: string | undefined;
  let forwardedHost: string | undefined;
  let cookies: string[] | undefined;
  if (facts.authority !== undefined && !drops?.has('host')) out.push('host', facts.authority);
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const value = rawHeaders[i + 1];
    // Pseudo-headers never reach an HTTP/1.1 app; the Host (or `:authority`) was written above.
    if (name.charCodeAt(0) === COLON || name === 'host') continue;
    // `TE: trailers` (the one TE value HTTP/2 allows, RFC 9113 §8.2.2) says the client reads
    // trailers; gRPC requires it of clients, and some gRPC servers refuse requests without it.
    if (facts.grpc === true && name === 'te' && value.trim().toLowerCase() === 'trailers') {
      out.push(name, 'trailers');
      continue;
    }
    // A gRPC call's grpc-timeout is the time left, written per attempt (see setGrpcTimeout).
    if (facts.grpc === true && name === 'grpc-timeout') continue;
    if (HOP_BY_HOP.has(name) || SIDECAR_OWNED.has(name)) {
      if (facts.peerTrusted) {
        if (name === 'x-forwarded-for') forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
        else if (name === 'x-forwarded-proto') forwardedProto ??= value;
        else if (name === 'x-forwarded-host') forwardedHost ??= value;
      }
      continue;
    }
    if (named !== undefined && named.has(name)) continue;
    if (facts.traceHeaders !== undefined && facts.traceHeaders.has(name)) continue;
    if (drops !== undefined && drops.has(name)) continue;
    if (dropUnderscored && name.includes('_')) continue;
    if (name === 'cookie') {
      // HTTP/2 clients send each cookie as a field of its own; HTTP/1.1 allows one Cookie
      // header, so they are joined with "; " (RFC 9113 §8.2.3).
      (cookies ??= []).push(value);
      continue;
    }
    out.push(name, value);
  }
  if (cookies !== undefined) out.push('cookie', cookies.join('; '));

  out.push('x-forwarded-for', forwardedFor === undefined ? facts.peerAddress : `${forwardedFor}, ${facts.peerAddress}`);
  out.push('x-forwarded-proto', forwardedProto ?? facts.proto);
  const xfHost = forwardedHost ?? facts.authority;
  if (xfHost !== undefined) out.push('x-forwarded-host', xfHost);
  if (facts.clientCert !== undefined) out.push('x-forwarded-client-cert', facts.clientCert);
  for (const [name, value] of mutation.add) out.push(name, value);
  if (facts.grpc === true) out.push(GRPC_TIMEOUT_HEADER, '');
  out.push(REQUEST_ID_HEADER, facts.requestId);
  out.push(ATTEMPT_HEADER, '1');
  return out;
}

const GRPC_TIMEOUT_HEADER = 'grpc-timeout';

/**
 * Writes the time left into a gRPC call's list built by `upstreamRequestHeaders` (its
 * `grpc-timeout` entry sits just before `x-request-id`, ahead of the per-attempt trace
 * entries, so it is found from the end in a few steps).
 */
export function setGrpcTimeout(headers: string[], value: string): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (headers[i] === GRPC_TIMEOUT_HEADER) {
      headers[i + 1] = value;
      return;
    }
  }
}

/**
 * The header list sent back to the client, from undici's raw response headers, as the flat
 * array `ServerResponse#writeHead` accepts (repeated names such as Set-Cookie stay separate).
 */
export function downstreamResponseHeaders(
  rawHeaders: readonly Buffer[],
  mutation: HeaderMutation,
  requestId: string,
): string[] {
  const out: string[] = [];
  let named: Set<string> | undefined;
  const drops = mutation.add.length + mutation.remove.length > 0 ? droppedBy(mutation) : undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toString('latin1');
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower === REQUEST_ID_HEADER) {
      if (lower === 'connection') named = connectionNamed(rawHeaders[i + 1].toString('latin1'), named);
      continue;
    }
    if (drops !== undefined && drops.has(lower)) continue;
    out.push(name, rawHeaders[i + 1].toString('latin1'));
  }
  // Rare: Connection named other headers, which may have come before it.
  if (named !== undefined) removeNamed(out, named);
  for (const [name, value] of mutation.add) out.push(name, value);
  out.push(REQUEST_ID_HEADER, requestId);
  return out;
}

/** Removes from a flat `[name, value, ...]` list every entry whose name is in `named` (lower case). */
function removeNamed(list: string[], named: ReadonlySet<string>): void {
  let kept = 0;
  for (let i = 0; i < list.length; i += 2) {
    if (named.has(list[i].toLowerCase())) continue;
    list[kept++] = list[i];
    list[kept++] = list[i + 1];
  }
  list.length = kept;
}

/** What undici hands to onComplete: raw buffers (HTTP/1.1), a header object (HTTP/2), or nothing. */
export type ResponseTrailers = readonly (Buffer | string)[] | Readonly<Record<string, string | string[] | undefined>> | null | undefined;

/**
 * The response's trailer fields for the client, lower-case names, or undefined when there are
 * none: pseudo-headers and hop-by-hop fields are left out. gRPC puts its status here.
 */
export function downstreamTrailers(trailers: ResponseTrailers): Record<string, string | string[]> | undefined {
  if (trailers === null || trailers === undefined) return undefined;
  const out: Record<string, string | string[]> = {};
  let any = false;
  const add = (rawName: string, value: string | string[]): void => {
    const name = rawName.toLowerCase();
    if (name.charCodeAt(0) === COLON || HOP_BY_HOP.has(name) || name === 'content-length') return;
    const previous = out[name];
    out[name] = previous === undefined ? value : [...(Array.isArray(previous) ? previous : [previous]), ...(Array.isArray(value) ? value : [value])];
    any = true;
  };
  if (Array.isArray(trailers)) {
    const list = trailers as readonly (Buffer | string)[];
    for (let i = 0; i + 1 < list.length; i += 2) add(list[i].toString(), list[i + 1].toString());
  } else {
    // (An HTTP/2 header object may carry symbol keys, e.g. sensitive headers; Object.keys skips them.)
    const record = trailers as Readonly<Record<string, string | string[] | undefined>>;
    for (const name of Object.keys(record)) {
      const value = record[name];
      if (value !== undefined) add(name, value);
    }
  }
  return any ? out : undefined;
}
