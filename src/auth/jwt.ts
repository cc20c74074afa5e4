import { createLocalJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';
import { parseJwks } from '../config/route-files';
import type { JsonWebKey, JwtAuth } from '../config/types';
import type { Logger } from '../telemetry/logger';
import { FileSource } from './file-source';
import { remoteKeySet, type RemoteKeySet } from './jwks';
import { bearerToken, quoted, type Authenticator, type AuthOutcome, type AuthRequest } from './outcome';

const keySets = new WeakMap<readonly JsonWebKey[], ReturnType<typeof createLocalJWKSet>>();

/** What a header value may hold (no CR, LF or NUL): a claim that cannot be sent is left out. */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * `routes[].auth.jwt`: a bearer token verified against the issuer's keys (signature with an
 * allowed algorithm, exp/nbf with the clock skew, iss, aud). Its claims become request
 * headers; the client's own headers of those names never reach the app.
 */
export class JwtAuthenticator implements Authenticator {
  readonly strip: ReadonlySet<string>;
  private readonly remote: RemoteKeySet | undefined;
  private readonly file: FileSource<JsonWebKey[]> | undefined;
  private readonly realm: string;

  constructor(private readonly policy: JwtAuth, routeName: string) {
    const strip = new Set(policy.claimsToHeaders.map(([, header]) => header));
    if (!policy.forwardToken) strip.add('authorization');
    this.strip = strip;
    this.realm = routeName;
    this.remote = policy.jwksUrl === undefined ? undefined : remoteKeySet(policy.jwksUrl, policy.jwksTimeoutMs, policy.jwksRefreshIntervalMs);
    this.file =
      policy.jwksFile === undefined || policy.jwksKeys === undefined ? undefined : new FileSource(policy.jwksFile, [...policy.jwksKeys], parseJwks);
  }

  async check({ req }: AuthRequest, logger: Logger): Promise<AuthOutcome> {
    const token = bearerToken(req);
    // RFC 6750 §3.1: a request without credentials gets the challenge alone, no error code.
    if (token === undefined) return this.refuse('the request carries no bearer token', undefined);
    const keys = await this.keys(logger);
    if (keys === undefined) return this.refuse(`the issuer's keys could not be fetched (${this.remote?.lastError ?? 'no key set'})`, 'the signing keys are unavailable');
    let payload: JWTPayload;
    try {
      payload = await this.verify(token, keys);
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey && this.remote !== undefined && (await this.remote.refreshForUnknownKid())) {
        const fresh = await this.remote.current();
        try {
          payload = await this.verify(token, fresh ?? keys);
        } catch (retryError) {
          return this.refuse(describe(retryError), describe(retryError));
        }
      } else {
        return this.refuse(describe(error), describe(error));
      }
    }
    const set: [string, string][] = [];
    for (const [claim, header] of this.policy.claimsToHeaders) {
      const value = payload[claim];
      if (value === undefined || value === null) continue;
      const text = typeof value === 'string' ? value : JSON.stringify(value);
      if (HEADER_VALUE.test(text)) set.push([header, text]);
    }
    return { kind: 'pass', set };
  }

  private async keys(logger: Logger): Promise<readonly JsonWebKey[] | undefined> {
    if (this.file !== undefined) return this.file.current((message) => logger.warn({ file: this.policy.jwksFile }, message));
    const keys = await this.remote?.current();
    return keys;
  }

  private async verify(token: string, keys: readonly JsonWebKey[]): Promise<JWTPayload> {
    let keySet = keySets.get(keys);
    if (keySet === undefined) {
      // Built once per fetched key set: it keeps the imported keys.
      keySet = createLocalJWKSet({ keys: keys as never[] });
      keySets.set(keys, keySet);
    }
    const { payload } = await jwtVerify(token, keySet, {
      issuer: this.policy.issuer,
      audience: [...this.policy.audiences],
      algorithms: [...this.policy.algorithms],
      clockTolerance: this.policy.clockSkewSeconds,
      requiredClaims: ['exp'],
    });
    return payload;
  }

  private refuse(message: string, description: string | undefined): AuthOutcome {
    const challenge =
      description === undefined
        ? `Bearer realm=${quoted(this.realm)}`
        : `Bearer realm=${quoted(this.realm)}, error="invalid_token", error_description=${quoted(description)}`;
    return { kind: 'deny', code: 'UNAUTHENTICATED', message, headers: ['www-authenticate', challenge] };
  }
}

/** Why a token failed, in words that help its owner and tell an attacker nothing about the keys. */
function describe(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'the token has expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'aud') return 'the token is not meant for this audience';
    if (error.claim === 'iss') return 'the token is from another issuer';
    if (error.claim === 'nbf') return 'the token is not valid yet';
    if (error.claim === 'exp') return 'the token has no expiry';
    return `the token's ${error.claim} claim is invalid`;
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return 'the token is signed with an algorithm this route does not accept';
  if (error instanceof errors.JWKSNoMatchingKey) return 'no key of the issuer matches the token (unknown kid)';
  if (error instanceof errors.JWKSMultipleMatchingKeys) return 'several keys of the issuer match the token; it must name its kid';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'the token signature is invalid';
  if (error instanceof errors.JOSEError) return 'the token is malformed';
  return 'the token could not be verified';
}
