import t from 'tap';
import { rawExchange } from '../helpers/raw';
import { startSidecar } from '../helpers/sidecar';

/**
 * The admin listener follows RFC 9110 on methods: a 405 says in `Allow` which methods the
 * endpoint takes, and HEAD is answered wherever GET is (headers only, same content-length).
 */

const CONFIG = `
admin: { address: 127.0.0.1:0 }
listeners: [{ name: main, address: 127.0.0.1:0, routes: [{ name: p, match: { path: /p }, directResponse: { status: 200 } }] }]
`;

function head(text: string): string {
  return text.split('\r\n\r\n')[0];
}

function header(text: string, name: string): string | undefined {
  return new RegExp(`\\r\\n${name}: *([^\\r]*)`, 'i').exec(head(text))?.[1];
}

t.test('a 405 carries Allow with the methods the endpoint takes', async (t) => {
  const proxy = await startSidecar(CONFIG);
  t.teardown(() => proxy.close());
  const port = proxy.sidecar.admin.port;
  const postMetrics = await rawExchange(port, 'POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  t.same(postMetrics.statuses, [405]);
  t.equal(header(postMetrics.text, 'allow'), 'GET, HEAD');
  t.match(postMetrics.text, /"message": "use GET \/metrics or HEAD \/metrics"/);
  const getReload = await rawExchange(port, 'GET /reload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  t.same(getReload.statuses, [405]);
  t.equal(header(getReload.text, 'allow'), 'POST');
  const headReload = await rawExchange(port, 'HEAD /reload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  t.same(headReload.statuses, [405], 'HEAD is not a way to run POST /reload');
  t.equal(header(headReload.text, 'allow'), 'POST');
  const unknown = await rawExchange(port, 'DELETE /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  t.same(unknown.statuses, [404]);
  t.equal(header(unknown.text, 'allow'), undefined, 'no Allow on a 404');
});

t.test('HEAD works wherever GET does: the same status and headers, no body', async (t) => {
  const proxy = await startSidecar(CONFIG);
  t.teardown(() => proxy.close());
  const port = proxy.sidecar.admin.port;
  for (const path of ['/live', '/ready', '/metrics', '/config', '/stats', '/clusters']) {
    const got = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    const headed = await rawExchange(port, `HEAD ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    t.same(headed.statuses, [200], `HEAD ${path} → 200`);
    t.equal(header(headed.text, 'content-type'), header(got.text, 'content-type'), `HEAD ${path}: the GET's content-type`);
    t.ok(Number(header(headed.text, 'content-length')) > 0, `HEAD ${path}: a content-length`);
    t.equal(headed.text.slice(head(headed.text).length + 4), '', `HEAD ${path}: no body`);
  }
  // Framing stays right on a kept-alive connection: the response after a HEAD is read whole.
  const both = await rawExchange(port, 'HEAD /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  // (statusesOf cannot frame a HEAD answer: it would read content-length bytes of body.)
  t.equal(both.text.match(/^HTTP\/1\.1 200 OK\r\n/gm)?.length, 2, 'two responses');
  t.match(both.text, /\r\n\r\nlive\n$/);
});
