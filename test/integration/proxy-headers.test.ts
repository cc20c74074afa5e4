import t, { type Test } from 'tap';
import net from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'undici';
import { startUpstream } from '../helpers/upstream';
import { simpleConfig, startSidecar } from '../helpers/sidecar';

async function setup(t: Test) {
  const seen: IncomingHttpHeaders[] = [];
  const bodies: string[] = [];
  const app = await startUpstream((req, res) => {
    seen.push(req.headers);
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    res.writeHead(200, {
      'content-type': 'text/plain',
      connection: 'x-app-hop',
      'x-app-hop': 'must not reach the client',
      'keep-alive': 'timeout=5',
      server: 'demo',
      'x-app-header': 'kept',
    });
    req.on('end', () => {
      bodies.push(body);
      res.end('ok');
    });
  });
  const proxy = await startSidecar(simpleConfig(app.url, `
requestHeaders: { add: { x-from: sidecar }, remove: [x-debug] }
responseHeaders: { add: { x-served-by: sidecar }, remove: [server] }`));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  return { app, proxy, seen, bodies };
}

/** Sends a request as raw bytes so hop-by-hop headers are sent exactly as written. */
function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1');
      if (/\r\n\r\n[\s\S]*ok$/.test(data) || data.includes('"error"')) socket.end();
    });
    socket.on('end', () => resolve(data));
    socket.on('close', () => resolve(data));
    socket.on('error', reject);
    socket.write(text);
  });
}

t.test('hop-by-hop headers never reach the app or the client', async (t) => {
  const { proxy, seen, bodies } = await setup(t);
  const port = Number(new URL(proxy.url()).port);
  const response = await rawRequest(
    port,
    'POST /hop HTTP/1.1\r\nHost: example.test\r\n' +
      'Connection: keep-alive, X-Custom-Hop\r\nX-Custom-Hop: secret\r\nKeep-Alive: timeout=100\r\n' +
      'Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-Checksum\r\nUpgrade: h2c\r\n' +
      'Expect: 100-continue\r\nTransfer-Encoding: chunked\r\nX-Debug: 1\r\n\r\n' +
      '2\r\nhi\r\n0\r\n\r\n',
  );
  t.match(response, /^HTTP\/1\.1 (100 Continue\r\n\r\nHTTP\/1\.1 )?200 OK/);
  const got = seen[0];
  t.ok(got.connection === undefined || got.connection === 'keep-alive', 'only the sidecar\'s own Connection header reaches the app');
  for (const name of ['x-custom-hop', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'expect', 'x-debug']) {
    t.equal(got[name], undefined, `${name} did not reach the app`);
  }
  t.equal(bodies[0], 'hi', 'the body arrived, framed by the sidecar');
  t.equal(got['x-from'], 'sidecar', 'route requestHeaders.add');
  t.equal(got.host, 'example.test', 'Host is kept');
  const head = response.split('\r\n\r\n').filter((p) => p.startsWith('HTTP/1.1 200'))[0].toLowerCase();
  t.notMatch(head, /x-app-hop/, 'a header named by the app\'s Connection is dropped');
  t.notMatch(head, /\r\nserver:/, 'responseHeaders.remove');
  t.match(head, /x-served-by: sidecar/, 'responseHeaders.add');
  t.match(head, /x-app-header: kept/);
});

t.test('X-Forwarded-* are set by the sidecar; client values from untrusted peers are replaced', async (t) => {
  const { proxy, seen } = await setup(t);
  const res = await request(`${proxy.url()}/xff`, {
    headers: { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.test', host: 'shop.test' },
  });
  await res.body.text();
  t.equal(seen[0]['x-forwarded-for'], '127.0.0.1');
  t.equal(seen[0]['x-forwarded-proto'], 'http');
  t.equal(seen[0]['x-forwarded-host'], 'shop.test');
  t.equal(seen[0]['x-sidecar-attempt'], '1');
});

t.test('a trusted proxy\'s X-Forwarded-For is appended to', async (t) => {
  const seen: IncomingHttpHeaders[] = [];
  const app = await startUpstream((req, res) => {
    seen.push(req.headers);
    res.end('ok');
  });
  const yaml = simpleConfig(app.url, '', '', 'trustedProxies: [127.0.0.0/8]');
  const proxy = await startSidecar(yaml);
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const res = await request(`${proxy.url()}/`, { headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'public.test' } });
  await res.body.text();
  t.equal(seen[0]['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
  t.equal(seen[0]['x-forwarded-proto'], 'https');
  t.equal(seen[0]['x-forwarded-host'], 'public.test');
});

t.test('x-request-id is kept when sent, generated otherwise, and echoed to the client', async (t) => {
  const { proxy, seen } = await setup(t);
  const kept = await request(`${proxy.url()}/id`, { headers: { 'x-request-id': 'abc-123' } });
  await kept.body.text();
  t.equal(seen[0]['x-request-id'], 'abc-123');
  t.equal(kept.headers['x-request-id'], 'abc-123');

  const generated = await request(`${proxy.url()}/id`);
  await generated.body.text();
  const id = seen[1]['x-request-id'];
  t.match(id, /^[0-9a-f-]{36}$/, 'a UUID was generated');
  t.equal(generated.headers['x-request-id'], id, 'the client sees the id the app saw');

  const hostile = await request(`${proxy.url()}/id`, { headers: { 'x-request-id': 'x'.repeat(500) } });
  await hostile.body.text();
  t.not(seen[2]['x-request-id'], 'x'.repeat(500), 'an oversized id is replaced');
});
