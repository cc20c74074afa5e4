import Negotiator from 'negotiator';
import type { CompressionPolicy, ContentEncoding } from '../config/types';

/** The response facts the decision reads (lower-case header values, or undefined). */
export interface ResponseFacts {
  readonly method: string | undefined;
  readonly status: number;
  readonly contentType: string | undefined;
  readonly contentEncoding: string | undefined;
  readonly contentLength: string | undefined;
  readonly contentRange: string | undefined;
  readonly cacheControl: string | undefined;
}

/**
 * Whether a response is compressed, and how:
 * - `none`: not a candidate at all (sent as it is, no Vary added);
 * - `identity`: a candidate this client gets unencoded (sent as it is, with Vary: Accept-Encoding,
 *   since another client would get it encoded);
 * - an encoding: compressed with it.
 */
export type CompressionDecision = 'none' | 'identity' | ContentEncoding;

/** The encodings this Node can produce (zstd came with Node 22.15 / 23.8). */
export function availableEncodings(wanted: readonly ContentEncoding[], hasZstd: boolean): ContentEncoding[] {
  return wanted.filter((encoding) => encoding !== 'zstd' || hasZstd);
}

export function decideCompression(policy: CompressionPolicy, available: readonly ContentEncoding[], acceptEncoding: string | undefined, r: ResponseFacts): CompressionDecision {
  if (r.method === 'HEAD' || r.status < 200 || r.status >= 300 || r.status === 204 || r.status === 206) return 'none';
  if (r.contentEncoding !== undefined && r.contentEncoding !== 'identity') return 'none';
  if (r.contentRange !== undefined) return 'none';
  if (r.cacheControl !== undefined && /(^|[\s,])no-transform($|[\s,;])/.test(r.cacheControl)) return 'none';
  if (!typeMatches(policy.contentTypes, r.contentType)) return 'none';
  if (r.contentLength !== undefined) {
    const length = Number(r.contentLength);
    if (!Number.isFinite(length) || length < policy.minBytes) return 'none';
  }
  if (acceptEncoding === undefined || available.length === 0) return 'identity';
  const negotiator = new Negotiator({ headers: { 'accept-encoding': acceptEncoding } });
  // (negotiator 1.x takes the server's order for ties; its types predate the option.)
  const encodings = negotiator.encodings as (available: string[], options: { preferred: string[] }) => string[];
  const chosen = encodings.call(negotiator, [...available], { preferred: [...available] })[0];
  return chosen === undefined ? 'identity' : (chosen as ContentEncoding);
}

/** Streams of events are never compressed: a compressor holds bytes back until its block fills. */
const NEVER = 'text/event-stream';

function typeMatches(patterns: readonly string[], contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const semicolon = contentType.indexOf(';');
  const type = (semicolon >= 0 ? contentType.slice(0, semicolon) : contentType).trim();
  if (type === NEVER) return false;
  const slash = type.indexOf('/');
  return patterns.some((pattern) => pattern === type || (pattern.endsWith('/*') && slash > 0 && pattern.slice(0, -1) === type.slice(0, slash + 1)));
}

/** A strong validator of the unencoded body is no validator of the encoded one (RFC 9110 §8.8.3): `"x"` → `W/"x"`. */
export function weakenEtag(etag: string): string {
  return etag.startsWith('W/') ? etag : `W/${etag}`;
}
