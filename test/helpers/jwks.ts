/**
 * JWT test helpers: signing keys with their public JWK, tokens signed with them, and a key
 * server (JWKS over HTTP) whose key sets, fetch counts and availability a test controls.
 */
import { exportJWK, generateKeyPair, SignJWT, type JWK, type KeyLike } from 'jose';
import { startUpstream } from './upstream';

export interface SigningKey {
  readonly kid: string;
  readonly alg: 'RS256' | 'ES256';
  readonly privateKey: KeyLike;
  readonly jwk: JWK;
}

/** The issuer `signJwt` writes unless told otherwise. */
export const TEST_ISSUER = 'https://id.example';

export async function signingKey(kid: string, alg: 'RS256' | 'ES256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/** A token for `sub: user-42` (plus `claims`), issued by TEST_ISSUER for audience `api`, valid 5 minutes. */
export function signJwt(key: SigningKey, claims: Record<string, unknown> = {}, options: { iss?: string; aud?: string; exp?: string | number } = {}): Promise<string> {
  return new SignJWT({ sub: 'user-42', ...claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid })
    .setIssuer(options.iss ?? TEST_ISSUER)
    .setAudience(options.aud ?? 'api')
    .setIssuedAt()
    .setExpirationTime(options.exp ?? '5m')
    .sign(key.privateKey);
}

export interface JwksServer {
  readonly url: string;
  /** The key set served at each path; a path not here answers 503. Change it to rotate keys. */
  readonly keySets: Map<string, JWK[]>;
  /** Requests per path. */
  readonly fetches: Map<string, number>;
  /** While true, every path answers 503. */
  failing: boolean;
  close(): Promise<void>;
}

export async function startJwksServer(keySets: ReadonlyArray<readonly [string, JWK[]]>): Promise<JwksServer> {
  const sets = new Map<string, JWK[]>(keySets);
  const fetches = new Map<string, number>();
  const upstream = await startUpstream((req, res) => {
    const url = req.url ?? '';
    fetches.set(url, (fetches.get(url) ?? 0) + 1);
    const keys = sets.get(url);
    if (server.failing || keys === undefined) {
      res.writeHead(503).end('down');
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys }));
  });
  const server: JwksServer = { url: upstream.url, keySets: sets, fetches, failing: false, close: () => upstream.close() };
  return server;
}
