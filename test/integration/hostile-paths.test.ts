/**
 * Path tricks over raw sockets. Routes: /admin → directResponse 403, /public → the app. No
 * spelling of /admin may reach the app, and the path the app receives is the path the route
 * matched (normalised once, see src/core/path.ts).
 */
import t from 'tap';
import { rawExchange } from '../helpers/raw';
import { startSidecar } from '../helpers/sidecar';
import { startUpstream } from '../helpers/upstream';

type Expected = 403 | 400 | 404 | { app: string };

const TRICKS: ReadonlyArray<readonly [string, Expected]> = [
  ['/admin', 403],
  ['/admin/', 403],
  ['/admin?x=1', 403],
  ['/public/../admin', 403],
  ['/public/./../admin', 403],
  ['/public/../../../../admin', 403],
  ['/public/%2e%2e/admin', 403],
  ['/public/%2E%2E/admin', 403],
  ['/public/.%2e/admin', 403],
  ['/public/%2e./admin', 403],
  ['/public/%2e%2e/%2e%2e/admin', 403],
  ['//admin', 403],
  ['///admin', 403],
  ['/public//..//admin', 403],
  ['/./admin', 403],
  ['/%61dmin', 403],
  ['/%61%64%6d%69%6e', 403],
  ['/public/../admin?next=/public', 403],
  ['/public\\..\\admin', 400],
  ['/public/..\\admin', 400],
  ['/public#/../admin', 400],
  ['/public/%zz', 400],
  ['/public/%2', 400],
  // Encoded slashes and backslashes are never decoded: the segment stays one segment.
  ['/public%2F..%2Fadmin', { app: '/public%2F..%2Fadmin' }],
  ['/public/..%2Fadmin', { app: '/public/..%2Fadmin' }],
  ['/public/%2e%2e%2fadmin', { app: '/public/..%2Fadmin' }],
  ['/public%5C..%5Cadmin', { app: '/public%5C..%5Cadmin' }],
  // Path parameters are refused by default (pathMatching.rejectPathParameters; see hostile-host-path.test.ts).
  ['/public/..;/admin', 400],
  // Double encoding is decoded by nobody here.
  ['/%2561dmin', 404],
  // Matching is case-sensitive (as in Envoy); see the README.
  ['/ADMIN', 404],
  ['/public/./a/../b?q=/../x', { app: '/public/b?q=/../x' }],
  ['/public/%7Euser/%41', { app: '/public/~user/A' }],
];

t.test('no spelling of /admin reaches the app', async (t) => {
  const seen: string[] = [];
  const app = await startUpstream((req, res) => {
    seen.push(req.url ?? '');
    res.end(`app:${req.url}`);
  });
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: admin
        match: { prefix: /admin }
        directResponse: { status: 403, body: forbidden }
      - name: public
        match: { prefix: /public }
        cluster: app
      - name: api
        match: { prefix: /api/ }
        rewritePrefix: /public/
        cluster: app
clusters:
  - name: app
    endpoints: [{ url: ${app.url} }]
`);
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const port = proxy.sidecar.listenerPort('main');

  for (const [target, expected] of TRICKS) {
    const answer = await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n`);
    if (typeof expected === 'number') {
      t.same(answer.statuses, [expected], `${target} → ${expected}`);
      t.notMatch(answer.text, /app:/, `${target}: not answered by the app`);
    } else {
      t.same(answer.statuses, [200], `${target} → the app`);
      t.match(answer.text, `app:${expected.app}`, `${target}: the app received ${expected.app}`);
    }
  }

  const absolute = await rawExchange(port, 'GET http://app/public/../admin HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n');
  t.same(absolute.statuses, [403], 'absolute-form target is normalised too');
  const rewritten = await rawExchange(port, 'GET /api/x/../y HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n');
  t.match(rewritten.text, 'app:/public/y', 'rewritePrefix applies to the normalised path');
  const climbing = await rawExchange(port, 'GET /api/../admin HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n');
  t.same(climbing.statuses, [403], 'a prefix route cannot be climbed out of into another route');

  // A WebSocket handshake is routed by the same normalised path.
  const upgrade = (target: string): string =>
    `GET ${target} HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
  for (const [target, status] of [['/public/../admin', 403], ['/public/%2e%2e/admin', 403], ['//admin', 403], ['/public\\..\\admin', 400]] as const) {
    const answer = await rawExchange(port, upgrade(target));
    t.same(answer.statuses, [status], `websocket upgrade to ${target} → ${status}`);
  }

  for (const url of seen) {
    // What an app built on the WHATWG URL parser (or on Node's http router) reads.
    const pathname = new URL(url, 'http://app.local').pathname;
    t.ok(pathname.startsWith('/public/') || pathname.startsWith('/public%'), `the app only saw /public paths: ${url}`);
    t.notOk(/\/\.\.?(\/|$)|\/\//.test(pathname), `no dot segment or empty segment reached the app: ${url}`);
  }
});
