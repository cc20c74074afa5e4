/**
 * routes[].auth.jwt with real tokens: RS256 and ES256 keys made and signed by jose, the key
 * set served by a test server. Valid → 200 with the claim headers; expired, wrong audience,
 * wrong issuer, unknown kid, alg none, tampered → 401 with WWW-Authenticate; key rotation is
 * picked up; with the key server down the last keys still work; client-sent copies of the
 * claim headers never reach the app.
 */
import { createHmac, createPublicKey, type JsonWebKey } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import path from 'node:path';
import t from 'tap';
import { UnsecuredJWT } from 'jose';
import { request } from 'undici';
import { signingKey, signJwt as sign, startJwksServer, TEST_ISSUER as ISSUER } from '../helpers/jwks';
import { startSidecarWith } from '../helpers/sidecar';
import { captureLogger } from '../helpers/tls-clients';
import { startUpstream } from '../helpers/upstream';
import { waitUntil } from '../helpers/wait';

t.test('JWT authentication', async (t) => {
  const rsa = await signingKey('rsa-1', 'RS256');
  const ec = await signingKey('ec-1', 'ES256');
  const rotated = await signingKey('rsa-2', 'RS256');
  const stranger = await signingKey('rsa-1', 'RS256'); // same kid, another key

  // The key server: a key set per path, its fetch count, and a switch to fail.
  const idp = await startJwksServer([['/main.json', [rsa.jwk, ec.jwk]], ['/rotating.json', [rsa.jwk]], ['/flaky.json', [rsa.jwk]]]);
  const { keySets, fetches } = idp;
  const seen: IncomingHttpHeaders[] = [];
  const app = await startUpstream((req, res) => {
    seen.push(req.headers);
    res.end('app');
  });
  const jwtRoute = (name: string, prefix: string, jwks: string, extra = '') => `
      - name: ${name}
        match: { prefix: ${prefix} }
        cluster: app
        auth:
          jwt:
            issuer: ${ISSUER}
            audiences: [api, other]
            jwks: { url: ${idp.url}${jwks}${extra} }
            claimsToHeaders: { sub: x-user-id, roles: x-user-roles }`;
  const proxy = await startSidecarWith(t, `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:${jwtRoute('rotating', '/rotating', '/rotating.json')}${jwtRoute('flaky', '/flaky', '/flaky.json', ', refreshInterval: 50ms')}${jwtRoute('nokeys', '/nokeys', '/missing.json')}${jwtRoute('main', '/', '/main.json')}
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`, [app, idp]);
  const base = proxy.url();
  const call = async (path: string, token: string | undefined, headers: Record<string, string> = {}) => {
    const res = await request(`${base}${path}`, { headers: token === undefined ? headers : { ...headers, authorization: `Bearer ${token}` } });
    const body = await res.body.text();
    return { status: res.statusCode, challenge: res.headers['www-authenticate'] as string | undefined, error: res.headers['x-sidecar-error'], body };
  };

  t.test('valid tokens', async (t) => {
    const before = seen.length;
    const rs = await call('/orders', await sign(rsa, { roles: ['admin', 'ops'] }), { 'x-user-id': 'forged', 'x-user-roles': 'root' });
    t.equal(rs.status, 200, 'RS256');
    const headers = seen[before];
    t.equal(headers['x-user-id'], 'user-42', 'the sub claim, not the client\'s copy');
    t.equal(headers['x-user-roles'], '["admin","ops"]', 'an array claim as JSON');
    t.equal(headers.authorization, undefined, 'the token is not forwarded by default');
    const es = await call('/orders', await sign(ec));
    t.equal(es.status, 200, 'ES256');
    const noRoles = await call('/orders', await sign(ec), { 'x-user-roles': 'root' });
    t.equal(noRoles.status, 200);
    t.equal(seen.at(-1)?.['x-user-roles'], undefined, 'a claim the token lacks: the client\'s header is still removed');
    const lower = await call('/orders', undefined, { authorization: `bearer ${await sign(rsa)}` });
    t.equal(lower.status, 200, 'the scheme is case-insensitive');
  });

  t.test('refused tokens', async (t) => {
    const before = seen.length;
    const cases: [string, string | undefined, RegExp][] = [
      ['no token', undefined, /^Bearer realm="main"$/],
      ['expired', await sign(rsa, {}, { exp: Math.floor(Date.now() / 1000) - 3600 }), /error="invalid_token", error_description="the token has expired"/],
      ['wrong audience', await sign(rsa, {}, { aud: 'billing' }), /not meant for this audience/],
      ['wrong issuer', await sign(rsa, {}, { iss: 'https://evil.example' }), /from another issuer/],
      ['unknown kid', await sign({ ...rsa, kid: 'nobody' }), /unknown kid/],
      ['another key under a known kid', await sign(stranger), /signature is invalid/],
      ['alg none', new UnsecuredJWT({ sub: 'admin' }).setIssuer(ISSUER).setAudience('api').setExpirationTime('5m').encode(), /error="invalid_token"/],
      ['garbage', 'not.a.token', /malformed/],
    ];
    const good = await sign(rsa);
    const [header, payload, signature] = good.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const tampered = Buffer.from(JSON.stringify({ ...claims, sub: 'admin' })).toString('base64url');
    cases.push(['tampered payload', `${header}.${tampered}.${signature}`, /signature is invalid/]);
    for (const [what, token, challenge] of cases) {
      const res = await call('/orders', token, { 'x-user-id': 'admin' });
      t.equal(res.status, 401, `${what}: 401`);
      t.equal(res.error, 'UNAUTHENTICATED', `${what}: the sidecar's error`);
      t.match(res.challenge ?? '', challenge, `${what}: ${res.challenge}`);
    }
    t.equal(seen.length, before, 'the app saw none of them');
  });

  t.test('key rotation is picked up from an unknown kid', async (t) => {
    t.equal((await call('/rotating/x', await sign(rsa))).status, 200);
    const fetched = fetches.get('/rotating.json') ?? 0;
    keySets.set('/rotating.json', [rsa.jwk, rotated.jwk]);
    const res = await call('/rotating/x', await sign(rotated));
    t.equal(res.status, 200, 'a token of the new key passes');
    t.equal(fetches.get('/rotating.json'), fetched + 1, 'one fetch for the new kid');
    // Forged kids within the cooldown cost no fetch.
    for (let i = 0; i < 5; i++) t.equal((await call('/rotating/x', await sign({ ...rsa, kid: `forged-${i}` }))).status, 401);
    t.equal(fetches.get('/rotating.json'), fetched + 1, 'no fetch per forged kid (cooldown)');
  });

  t.test('the key server down: the last good keys still work', async (t) => {
    t.equal((await call('/flaky/x', await sign(rsa))).status, 200);
    idp.failing = true;
    const fetched = fetches.get('/flaky.json') ?? 0;
    // The 50ms refresh interval makes requests try (and fail) to refresh.
    await waitUntil(async () => {
      t.equal((await call('/flaky/x', await sign(rsa))).status, 200);
      return (fetches.get('/flaky.json') ?? 0) >= fetched + 2;
    }, 'refreshes fail while requests pass');
    idp.failing = false;
  });

  t.test('no key set ever fetched: 401, not a crash', async (t) => {
    const res = await call('/nokeys/x', await sign(rsa));
    t.equal(res.status, 401);
    t.match(res.body, /could not be fetched/);
  });
});

t.test('attacks and the key file', async (t) => {
  const rsa = await signingKey('rsa-1', 'RS256');
  const next = await signingKey('rsa-2', 'RS256');
  const dir = t.testdir();
  const keysFile = path.join(dir, 'jwks.json');
  await fsp.writeFile(keysFile, JSON.stringify({ keys: [rsa.jwk] }));
  // A key server that accepts the connection and never answers.
  const stalled = await startUpstream(() => {});
  const seen: IncomingHttpHeaders[] = [];
  const app = await startUpstream((req, res) => {
    seen.push(req.headers);
    res.end('app');
  });
  const log = captureLogger();
  const proxy = await startSidecarWith(t, `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: stalled
        match: { prefix: /stalled }
        cluster: app
        auth: { jwt: { issuer: ${ISSUER}, audiences: [api], jwks: { url: ${stalled.url}/jwks, timeout: 300ms } } }
      - name: file
        match: { prefix: / }
        cluster: app
        cors: { allowOrigins: [https://app.example] }
        auth: { jwt: { issuer: ${ISSUER}, audiences: [api], jwks: { file: ${JSON.stringify(keysFile)} }, forwardToken: true } }
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`, [app, stalled], { logger: log.logger });
  const call = async (urlPath: string, token: string | undefined, headers: Record<string, string> = {}) => {
    const res = await request(`${proxy.url()}${urlPath}`, { headers: token === undefined ? headers : { ...headers, authorization: `Bearer ${token}` } });
    const body = await res.body.text();
    return { status: res.statusCode, headers: res.headers, body };
  };

  const good = await sign(rsa);
  const ok = await call('/x', good);
  t.equal(ok.status, 200, 'a key from the file');
  t.equal(seen.at(-1)?.authorization, `Bearer ${good}`, 'forwardToken: true forwards it');

  // Key confusion: HS256 "signed" with the RSA public key as the HMAC secret.
  const publicPem = createPublicKey({ key: rsa.jwk as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', kid: 'rsa-1', typ: 'JWT' })).toString('base64url');
  const payload = Buffer.from(JSON.stringify({ sub: 'admin', iss: ISSUER, aud: 'api', exp: Math.floor(Date.now() / 1000) + 300 })).toString('base64url');
  const mac = createHmac('sha256', publicPem).update(`${header}.${payload}`).digest('base64url');
  const confused = await call('/x', `${header}.${payload}.${mac}`);
  t.equal(confused.status, 401, 'HS256 with the public key as secret is refused');
  t.match(String(confused.headers['www-authenticate']), /algorithm this route does not accept/);

  const huge = await call('/x', 'a'.repeat(12_000));
  t.equal(huge.status, 401, 'a 12 KB garbage token: 401');

  const cors = await call('/x', undefined, { origin: 'https://app.example' });
  t.equal(cors.status, 401);
  t.equal(cors.headers['access-control-allow-origin'], 'https://app.example', 'the 401 carries the CORS headers: the page can read it');

  const preflight = await request(`${proxy.url()}/x`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' } });
  await preflight.body.dump();
  t.equal(preflight.statusCode, 204, 'a preflight needs no token (browsers send none)');

  const started = performance.now();
  const slow = await call('/stalled/x', good);
  t.equal(slow.status, 401, 'a key server that never answers: 401');
  t.ok(performance.now() - started < 5_000, 'within the JWKS timeout, not the client\'s');
  t.match(slow.body, /could not be fetched/);

  // The key file rotates: the new key is picked up; the old token stops working.
  await fsp.writeFile(keysFile, JSON.stringify({ keys: [next.jwk] }));
  const rotated = await sign(next);
  await waitUntil(async () => (await call('/x', rotated)).status === 200, 'the rotated file is read');
  t.equal((await call('/x', good)).status, 401, 'a token of the retired key is refused');
  // A broken file keeps the last good keys.
  await fsp.writeFile(keysFile, '{"keys": [');
  await waitUntil(async () => {
    t.equal((await call('/x', rotated)).status, 200, 'the last good keys stay');
    return log.lines.some((line) => line.msg.includes('not JSON') && line.msg.includes('last good contents stay'));
  }, 'the broken file is read and reported while requests pass');
});
