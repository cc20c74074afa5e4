/** The pure decisions of the edge policies: redirect targets, escaped slashes, CORS origins, compression. */
import t from 'tap';
import type { CompressionPolicy, CorsPolicy, RedirectAction } from '../../src/config/types';
import { decideCompression, weakenEtag, type ResponseFacts } from '../../src/policy/compression';
import { allowedOrigin } from '../../src/policy/cors';
import { redirectLocation } from '../../src/policy/redirect';
import { escapedSlashOutcome } from '../../src/proxy/escaped-slashes';

t.test('redirectLocation', async (t) => {
  const redirect = (r: Partial<RedirectAction>): RedirectAction => ({ scheme: undefined, host: undefined, port: undefined, path: undefined, prefixRewrite: undefined, status: 308, ...r });
  const url = { scheme: 'http' as const, host: '[::1]', authority: '[::1]:8080', path: '/a/b', query: '?q=1' };
  t.equal(redirectLocation(redirect({ scheme: 'https' }), url, undefined), 'https://[::1]/a/b?q=1', 'IPv6 host kept in brackets, old port dropped');
  t.equal(redirectLocation(redirect({ port: 443, scheme: 'https' }), url, undefined), 'https://[::1]/a/b?q=1', 'the default port is not written');
  t.equal(redirectLocation(redirect({ port: 9000 }), url, undefined), 'http://[::1]:9000/a/b?q=1');
  t.equal(redirectLocation(redirect({}), url, undefined), 'http://[::1]:8080/a/b?q=1', 'nothing replaced: the same URL');
  t.equal(redirectLocation(redirect({ prefixRewrite: '/' }), url, '/a'), 'http://[::1]:8080/b?q=1');
  t.equal(redirectLocation(redirect({ prefixRewrite: '/v2/' }), url, '/a/'), 'http://[::1]:8080/v2/b?q=1');
  t.equal(redirectLocation(redirect({}), { ...url, host: '', authority: undefined }, undefined), undefined, 'no host');
});

t.test('escapedSlashOutcome', async (t) => {
  t.same(escapedSlashOutcome('keep', '/a%2Fb'), { kind: 'pass' });
  t.same(escapedSlashOutcome('reject', '/a%20b'), { kind: 'pass' }, 'other escapes pass');
  t.equal(escapedSlashOutcome('reject', '/a%5Cb').kind, 'reject');
  t.same(escapedSlashOutcome('unescape-and-redirect', '/x/..%2F..%2Fetc'), { kind: 'redirect', path: '/etc' });
  t.same(escapedSlashOutcome('unescape-and-redirect', '/a%252Fb'), { kind: 'pass' }, 'a double-encoded slash is not a slash');
  // Twice in a row: the regex's state does not leak between calls.
  t.equal(escapedSlashOutcome('reject', '/a%2Fb').kind, 'reject');
  t.equal(escapedSlashOutcome('reject', '/a%2Fb').kind, 'reject');
});

t.test('allowedOrigin', async (t) => {
  const policy: CorsPolicy = {
    allowOrigins: [{ kind: 'exact', origin: 'https://app.example' }, { kind: 'subdomain', suffix: '.example.com' }],
    allowMethods: ['GET'], allowHeaders: [], exposeHeaders: [], maxAgeSeconds: 0, allowCredentials: true,
  };
  t.equal(allowedOrigin(policy, 'https://APP.example'), 'https://APP.example', 'case-insensitive, echoed as sent');
  t.equal(allowedOrigin(policy, 'https://a.b.example.com:8443'), 'https://a.b.example.com:8443');
  t.equal(allowedOrigin(policy, 'https://example.com'), undefined);
  t.equal(allowedOrigin(policy, 'https://app.example.evil'), undefined);
  t.equal(allowedOrigin(policy, undefined), undefined);
  const any: CorsPolicy = { ...policy, allowOrigins: [{ kind: 'any' }], allowCredentials: false };
  t.equal(allowedOrigin(any, 'https://x.test'), '*');
});

t.test('decideCompression', async (t) => {
  const policy: CompressionPolicy = { algorithms: ['br', 'gzip'], minBytes: 100, contentTypes: ['text/*', 'application/json'] };
  const facts = (r: Partial<ResponseFacts>): ResponseFacts => ({
    method: 'GET', status: 200, contentType: 'text/html; charset=utf-8', contentEncoding: undefined, contentLength: '1000', contentRange: undefined, cacheControl: undefined, ...r,
  });
  const decide = (accept: string | undefined, r: Partial<ResponseFacts> = {}) => decideCompression(policy, ['br', 'gzip'], accept, facts(r));
  t.equal(decide('gzip, br'), 'br');
  t.equal(decide('gzip;q=1, br;q=0.1'), 'gzip');
  t.equal(decide('*'), 'br');
  t.equal(decide('identity'), 'identity');
  t.equal(decide(undefined), 'identity');
  t.equal(decide('gzip', { contentLength: '99' }), 'none');
  t.equal(decide('gzip', { contentLength: undefined }), 'gzip');
  t.equal(decide('gzip', { contentType: 'image/png' }), 'none');
  t.equal(decide('gzip', { contentType: undefined }), 'none');
  t.equal(decide('gzip', { contentType: 'text/event-stream' }), 'none');
  t.equal(decide('gzip', { contentEncoding: 'br' }), 'none');
  t.equal(decide('gzip', { contentEncoding: 'identity' }), 'gzip');
  t.equal(decide('gzip', { status: 206 }), 'none');
  t.equal(decide('gzip', { status: 304 }), 'none');
  t.equal(decide('gzip', { status: 404 }), 'none');
  t.equal(decide('gzip', { contentRange: 'bytes 0-9/100' }), 'none');
  t.equal(decide('gzip', { cacheControl: 'max-age=60, no-transform' }), 'none');
  t.equal(decide('gzip', { cacheControl: 'no-transformx' }), 'gzip');
  t.equal(decide('gzip', { method: 'HEAD' }), 'none');
  t.equal(decideCompression(policy, ['gzip'], 'br', facts({})), 'identity', 'an encoding the route does not offer');
  t.equal(weakenEtag('"x"'), 'W/"x"');
  t.equal(weakenEtag('W/"x"'), 'W/"x"');
});
