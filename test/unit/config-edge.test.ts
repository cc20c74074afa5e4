/**
 * The edge sections of a route (access, cors, redirect, auth, compression) and the listener's
 * escapedSlashes: each bad value is reported with its path and YAML line.
 */
import path from 'node:path';
import t, { type Test } from 'tap';
import { parseConfigText } from '../../src/config/load';

const SOURCE = path.join(__dirname, 'inline.yaml');

/** One listener, one route whose extra lines are `route` (indented 8). */
function withRoute(route: string, listenerExtra = ''): string {
  return `listeners:
  - name: main
    address: 127.0.0.1:0
${listenerExtra}    routes:
      - name: r
        match: { prefix: /api }
${route}
clusters:
  - { name: app, endpoints: [{ url: http://127.0.0.1:3000 }] }
`;
}

function errorsOf(yaml: string): { path: string; line: number | undefined; message: string }[] {
  const result = parseConfigText(yaml, SOURCE);
  if (result.ok) return [];
  return result.errors.map((e) => ({ path: e.path, line: e.line, message: e.message }));
}

function expectError(t: Test, yaml: string, pathText: string, line: number, message: RegExp): void {
  const errors = errorsOf(yaml);
  const found = errors.find((e) => e.path === pathText);
  t.ok(found, `an error at ${pathText} (got ${JSON.stringify(errors)})`);
  if (found === undefined) return;
  t.equal(found.line, line, `${pathText} is reported at line ${line}`);
  t.match(found.message, message);
}

t.test('valid edge sections load', async (t) => {
  const result = parseConfigText(
    withRoute(`        cluster: app
        access: { allow: [10.0.0.0/8], deny: [10.9.0.0/16], clientCertSans: ["spiffe://cluster.local/ns/billing/sa/billing"] }
        cors: { allowOrigins: [https://app.example, "*.example.com"], allowMethods: [GET, POST], allowHeaders: [content-type], maxAge: 10m }`,
    '    escapedSlashes: reject\n'),
    SOURCE,
  );
  t.ok(result.ok, JSON.stringify(result.ok ? '' : result.errors));
  if (!result.ok) return;
  const route = result.config.listeners[0].routes[0];
  t.equal(route.action, 'cluster');
  if (route.action !== 'cluster') return;
  t.equal(route.cors?.maxAgeSeconds, 600);
  t.same(route.cors?.allowOrigins, [{ kind: 'exact', origin: 'https://app.example' }, { kind: 'subdomain', suffix: '.example.com' }]);
  t.equal(route.access?.allow[0].text, '10.0.0.0/8');
  t.equal(result.config.listeners[0].escapedSlashes, 'reject');
  const plain = parseConfigText(withRoute('        cluster: app'), SOURCE);
  t.ok(plain.ok && plain.config.listeners[0].escapedSlashes === 'keep', 'escapedSlashes defaults to keep');
});

t.test('access', async (t) => {
  expectError(t, withRoute(`        cluster: app
        access:
          allow: [10.0.0.0/33]`), 'listeners[0].routes[0].access.allow[0]', 9, /prefix length must be 0\.\.32/);
  expectError(t, withRoute(`        cluster: app
        access:
          clientCertSans: ["URI:spiffe://x y"]`), 'listeners[0].routes[0].access.clientCertSans[0]', 9, /invalid certificate SAN/);
  expectError(t, withRoute(`        cluster: app
        access:
          clientCertSans: []`), 'listeners[0].routes[0].access.clientCertSans', 9, /at least one name/);
  expectError(t, withRoute(`        directResponse: { status: 200 }
        access: { allow: [10.0.0.0/8] }`), 'listeners[0].routes[0].access', 8, /only applies to routes with a cluster/);
});

t.test('cors', async (t) => {
  expectError(t, withRoute(`        cluster: app
        cors:
          allowOrigins: ["*"]
          allowCredentials: true`), 'listeners[0].routes[0].cors.allowCredentials', 10, /cannot go with the origin "\*"/);
  expectError(t, withRoute(`        cluster: app
        cors:
          allowOrigins: [https://app.example/path]`), 'listeners[0].routes[0].cors.allowOrigins[0]', 9, /invalid origin "https:\/\/app\.example\/path"/);
  expectError(t, withRoute(`        cluster: app
        cors:
          allowOrigins: [https://app.example]
          maxAge: forever`), 'listeners[0].routes[0].cors.maxAge', 10, /invalid duration/);
  expectError(t, withRoute(`        cluster: app
        cors: { allowMethods: [GET] }`), 'listeners[0].routes[0].cors.allowOrigins', 8, /./);
});

t.test('redirect', async (t) => {
  const ok = parseConfigText(withRoute('        redirect: { scheme: https }'), SOURCE);
  t.ok(ok.ok && ok.config.listeners[0].routes[0].action === 'redirect', 'a redirect route');
  if (ok.ok && ok.config.listeners[0].routes[0].action === 'redirect') t.equal(ok.config.listeners[0].routes[0].redirect.status, 308, 'default 308');
  expectError(t, withRoute(`        redirect:
          status: 200`), 'listeners[0].routes[0].redirect.status', 8, /one of 301, 302, 303, 307, 308/);
  expectError(t, withRoute(`        redirect: { scheme: ftp }`), 'listeners[0].routes[0].redirect.scheme', 7, /http/);
  expectError(t, withRoute(`        redirect: { path: /a, prefixRewrite: /b }`), 'listeners[0].routes[0].redirect.prefixRewrite', 7, /path or prefixRewrite, not both/);
  expectError(t, withRoute(`        cluster: app
        redirect: { scheme: https }`), 'listeners[0].routes[0].redirect', 8, /exactly one of `cluster`, `directResponse`, `redirect`, `weightedClusters`; both/);
  expectError(t, withRoute(`        redirect: { scheme: https }
        retry: { attempts: 1 }`), 'listeners[0].routes[0].retry', 8, /only applies to routes with a cluster/);
  expectError(t, withRoute(`        redirect: { host: "evil.example:8080" }`), 'listeners[0].routes[0].redirect.host', 7, /invalid redirect host/);
});

t.test('escapedSlashes', async (t) => {
  expectError(t, withRoute('        cluster: app', '    escapedSlashes: decode\n'), 'listeners[0].escapedSlashes', 4, /keep|reject|unescape-and-redirect/);
});

t.test('auth', async (t) => {
  const dir = t.testdir({
    'md5.htpasswd': 'alice:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n',
    'plain.htpasswd': '# users\nalice:wonderland\n',
    'good.htpasswd': 'alice:$2y$04$abcdefghijklmnopqrstuuJ5RLSOmhxJYP2c3ozUUMFdp64ZTvjC.\n',
    'private.json': JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: 'a', y: 'b', d: 'secret' }] }),
    'hmac.json': JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }),
    'broken.json': '{"keys": [',
  });
  const file = (name: string) => JSON.stringify(path.join(dir, name));
  const jwt = (jwks: string, extra = '') => withRoute(`        cluster: app
        auth:
          jwt:
            issuer: https://id.example
            audiences: [api]
            jwks: ${jwks}${extra}`);

  const good = parseConfigText(withRoute(`        cluster: app
        auth: { basic: { usersFile: ${file('good.htpasswd')} } }`), SOURCE);
  t.ok(good.ok, 'a bcrypt htpasswd loads');
  if (good.ok) {
    const route = good.config.listeners[0].routes[0];
    t.ok(route.action === 'cluster' && route.auth?.kind === 'basic' && route.auth.realm === 'r', 'the realm defaults to the route name');
  }
  expectError(t, withRoute(`        cluster: app
        auth:
          basic: { usersFile: ${file('md5.htpasswd')} }`), 'listeners[0].routes[0].auth.basic.usersFile', 9, /line 1: the entry of "alice" is not a bcrypt hash/);
  const plain = errorsOf(withRoute(`        cluster: app
        auth:
          basic: { usersFile: ${file('plain.htpasswd')} }`));
  t.match(plain[0]?.message, /line 2: the entry of "alice" is not a bcrypt hash/, 'plain text refused, its line named');
  t.notMatch(plain[0]?.message, /wonderland/, 'the password is never quoted');
  expectError(t, withRoute(`        cluster: app
        auth:
          basic: { usersFile: ${file('missing.htpasswd')} }`), 'listeners[0].routes[0].auth.basic.usersFile', 9, /file not found/);
  expectError(t, jwt(`{ file: ${file('broken.json')} }`), 'listeners[0].routes[0].auth.jwt.jwks.file', 12, /not JSON/);
  expectError(t, jwt(`{ file: ${file('missing.json')} }`), 'listeners[0].routes[0].auth.jwt.jwks.file', 12, /file not found/);
  expectError(t, jwt(`{ file: ${file('private.json')} }`), 'listeners[0].routes[0].auth.jwt.jwks.file', 12, /private key/);
  expectError(t, jwt(`{ file: ${file('hmac.json')} }`), 'listeners[0].routes[0].auth.jwt.jwks.file', 12, /symmetric keys are never accepted/);
  expectError(t, jwt('{ url: https://id.example/jwks.json }', '\n            algorithms: [RS256, none]'), 'listeners[0].routes[0].auth.jwt.algorithms[1]', 13, /expected one of RS256/);
  expectError(t, jwt('{ url: https://id.example/jwks.json }', '\n            algorithms: [HS256]'), 'listeners[0].routes[0].auth.jwt.algorithms[0]', 13, /expected one of RS256/);
  expectError(t, jwt(`{ url: https://id.example/jwks.json, file: ${file('broken.json')} }`), 'listeners[0].routes[0].auth.jwt.jwks.file', 12, /exactly one of `url`, `file`; both/);
  expectError(t, jwt('{ url: ftp://id.example/jwks.json }'), 'listeners[0].routes[0].auth.jwt.jwks.url', 12, /http:\/\/ or https:\/\//);
  expectError(t, withRoute(`        cluster: app
        auth:
          external: { url: http://127.0.0.1:9000, failureMode: open }`), 'listeners[0].routes[0].auth.external.failureMode', 9, /deny, allow/);
  expectError(t, withRoute(`        cluster: app
        auth:
          basic: { usersFile: ${file('good.htpasswd')} }
          external: { url: http://127.0.0.1:9000 }`), 'listeners[0].routes[0].auth.external', 10, /exactly one of `jwt`, `basic`, `external`; both/);
});

t.test('compression', async (t) => {
  const ok = parseConfigText(withRoute('        cluster: app\n        compression: {}'), SOURCE);
  t.ok(ok.ok, 'an empty section takes the defaults');
  if (ok.ok) {
    const route = ok.config.listeners[0].routes[0];
    t.ok(route.action === 'cluster' && route.compression?.minBytes === 1024 && route.compression.algorithms.join() === 'br,gzip', 'defaults');
  }
  expectError(t, withRoute(`        cluster: app
        compression:
          algorithms: [deflate]`), 'listeners[0].routes[0].compression.algorithms[0]', 9, /expected one of br, gzip, zstd/);
  expectError(t, withRoute(`        cluster: app
        compression:
          contentTypes: [text]`), 'listeners[0].routes[0].compression.contentTypes[0]', 9, /invalid content type "text"/);
  expectError(t, withRoute(`        cluster: app
        compression:
          minBytes: lots`), 'listeners[0].routes[0].compression.minBytes', 9, /invalid size/);
});
