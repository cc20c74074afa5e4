import type { ErrorCode } from '../core/errors';
import type { Logger } from '../telemetry/logger';
import type { IncomingMessage } from 'node:http';

/** The named outcome of a route's authentication for one request. */
export type AuthOutcome =
  /** Let through; `set` are request headers for the app (claims, the auth service's answer). */
  | { readonly kind: 'pass'; readonly set: ReadonlyArray<readonly [string, string]> }
  /** Refused by the sidecar: its error `code`, with response `headers` (WWW-Authenticate). */
  | { readonly kind: 'deny'; readonly code: ErrorCode; readonly message: string; readonly headers: readonly string[] }
  /** The external authorization service's own answer, returned to the client as it sent it. */
  | { readonly kind: 'relay'; readonly status: number; readonly headers: readonly string[]; readonly body: Buffer };

export const PASS_WITHOUT_HEADERS: AuthOutcome = { kind: 'pass', set: [] };

/** The request as an authenticator sees it. */
export interface AuthRequest {
  readonly req: IncomingMessage;
  /** The path and query the app would receive. */
  readonly path: string;
  readonly requestId: string;
}

/** One route's authentication: built once per route, shared by its requests. */
export interface Authenticator {
  /** Request headers never forwarded as the client sent them (the ones this authenticator sets, and a consumed Authorization). */
  readonly strip: ReadonlySet<string>;
  check(request: AuthRequest, logger: Logger): Promise<AuthOutcome>;
}

/** The token of `Authorization: Bearer <token>`, or undefined. */
export function bearerToken(req: IncomingMessage): string | undefined {
  return credentials(req, 'bearer');
}

/** The credentials of an Authorization header of `scheme` (case-insensitive), or undefined. */
export function credentials(req: IncomingMessage, scheme: string): string | undefined {
  const header = req.headers.authorization;
  if (header === undefined) return undefined;
  const space = header.indexOf(' ');
  if (space <= 0 || header.slice(0, space).toLowerCase() !== scheme) return undefined;
  const value = header.slice(space + 1).trim();
  return value === '' ? undefined : value;
}

/** A quoted-string for an auth-param (RFC 9110 §5.6.4): quotes and backslashes escaped, control characters dropped. */
export function quoted(text: string): string {
  return `"${text.replace(/[\x00-\x1f\x7f]/g, '').replace(/["\\]/g, '\\$&')}"`;
}
