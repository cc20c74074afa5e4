/**
 * CONNECT over HTTP/2 (RFC 9113 §8.5). On a forward-proxy listener with h2c, a CONNECT stream
 * to an allowed destination is a TCP tunnel while the connection's other streams go on; a
 * denied one gets 403 EGRESS_DENIED. On a listener that is no forward proxy, an HTTP/2 CONNECT
 * gets the sidecar's 405 and nothing reaches the app: over TLS it once reached a handler
 * written for HTTP/1.1 sockets and took the process down.
 */

import { once } from 'node:events';
import http2 from 'node:http2';
import t from 'tap';
import { makeTestPki } from '../helpers/certs';
import { startEcho } from '../helpers/echo-server';
import { startSidecar } from '../helpers/sidecar';
import { connectH2 } from '../helpers/tls-clients';
import { startRecordingUpstream } from '../helpers/upstream';
import { waitUntil } from '../helpers/wait';

interface Answer {
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  readonly body: string;
}

/** Sends one request on the session and reads the whole answer. */
async function ask(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): Promise<Answer> {
  const stream = session.request(headers, { endStream: headers[':method'] !== 'CONNECT' });
  stream.setEncoding('utf8');
  let body = '';
  stream.on('data', (chunk: string) => (body += chunk));
  const [responseHeaders] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  if (headers[':method'] === 'CONNECT') stream.end();
  await once(stream, 'close');
  return { status: Number(responseHeaders[':status']), headers: responseHeaders, body };
}

t.test('HTTP/2 CONNECT on a TLS listener that is no forward proxy: 405, the app sees nothing, the connection goes on', async (t) => {
  const pki = await makeTestPki(t.testdir());
  const app = await startRecordingUpstream();
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: tls
    address: 127.0.0.1:0
    tls: { cert: ${JSON.stringify(pki.serverCertPath)}, key: ${JSON.stringify(pki.serverKeyPath)} }
    routes: [{ name: app, match: { prefix: / }, cluster: app }]
clusters: [{ name: app, endpoints: [{ url: ${app.url} }] }]
`);
  const session = await connectH2(proxy.port(), { ca: pki.ca });
  t.teardown(async () => {
    session.close();
    await proxy.close();
    await app.close();
  });
  const refused = await ask(session, { ':method': 'CONNECT', ':authority': `127.0.0.1:${app.port}` });
  t.equal(refused.status, 405);
  t.equal(refused.headers['x-sidecar-error'], 'METHOD_NOT_ALLOWED');
  t.match(refused.body, /is not a forward proxy/);
  const after = await ask(session, { ':method': 'GET', ':path': '/after' });
  t.equal(after.status, 200, 'the same connection serves the next stream');
  t.same(app.received.map((r) => r.url), ['/after'], 'the CONNECT never reached the app');
  t.match(proxy.accessLog[0], { method: 'CONNECT', status: 405, error: 'METHOD_NOT_ALLOWED', path: `127.0.0.1:${app.port}` });
});

t.test('HTTP/2 CONNECT on an h2c forward proxy: a tunnel per stream, denied destinations refused', async (t) => {
  const echo = await startEcho();
  const denied = await startEcho();
  const app = await startRecordingUpstream();
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: egress
    address: 127.0.0.1:0
    protocols: [http1, h2c]
    forwardProxy: { allow: ["127.0.0.1:${echo.port}"] }
    routes: [{ name: app, match: { prefix: / }, cluster: app }]
clusters: [{ name: app, endpoints: [{ url: ${app.url} }] }]
`);
  const session = http2.connect(`http://127.0.0.1:${proxy.port()}`);
  t.teardown(async () => {
    session.close();
    await proxy.close();
    await Promise.all([echo.close(), denied.close(), app.close()]);
  });

  const tunnel = session.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${echo.port}` }, { endStream: false });
  const [headers] = (await once(tunnel, 'response')) as [http2.IncomingHttpHeaders];
  t.equal(Number(headers[':status']), 200, 'the tunnel is open');
  let echoed = '';
  tunnel.setEncoding('utf8');
  tunnel.on('data', (chunk: string) => (echoed += chunk));
  tunnel.write('ping over a tunnel');
  await waitUntil(() => echoed === 'ping over a tunnel', 'the echo through the tunnel');

  // Another stream of the same connection while the tunnel is open.
  const routed = await ask(session, { ':method': 'GET', ':path': '/beside' });
  t.equal(routed.status, 200, 'a routed request beside the tunnel');

  const refused = await ask(session, { ':method': 'CONNECT', ':authority': `127.0.0.1:${denied.port}` });
  t.equal(refused.status, 403);
  t.equal(refused.headers['x-sidecar-error'], 'EGRESS_DENIED');
  t.equal(denied.connections, 0, 'the sidecar never connected to the denied destination');

  // END_STREAM is the half-close: the echo server answers with its FIN, the stream ends.
  tunnel.end();
  await once(tunnel, 'close');
  await waitUntil(() => echo.closed === 1, 'the destination connection closed');
  await waitUntil(() => proxy.accessLog.some((l) => l.method === 'CONNECT' && l.status === 200), 'the tunnel logged');
  const line = proxy.accessLog.find((l) => l.method === 'CONNECT' && l.status === 200);
  t.match(line, { bytes_in: 18, bytes_out: 18, path: `127.0.0.1:${echo.port}`, upgrade: 'connect' });
  t.same(app.received.map((r) => r.url), ['/beside'], 'only the routed request reached the app');
});

t.test('HTTP/2 CONNECT whose destination refuses: 503, and a malformed target: 400', async (t) => {
  const echo = await startEcho();
  const port = echo.port;
  await echo.close();
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: egress
    address: 127.0.0.1:0
    protocols: [http1, h2c]
    forwardProxy: { allow: ["127.0.0.1:${port}"], connectTimeout: 2s }
    routes: [{ name: ping, match: { prefix: / }, directResponse: { status: 200 } }]
`);
  const session = http2.connect(`http://127.0.0.1:${proxy.port()}`);
  t.teardown(async () => {
    session.close();
    await proxy.close();
  });
  const unreachable = await ask(session, { ':method': 'CONNECT', ':authority': `127.0.0.1:${port}` });
  t.equal(unreachable.status, 503);
  t.equal(unreachable.headers['x-sidecar-error'], 'UPSTREAM_CONNECT_FAILURE');
  const malformed = await ask(session, { ':method': 'CONNECT', ':authority': 'nohostport' });
  t.equal(malformed.status, 400);
  t.equal(malformed.headers['x-sidecar-error'], 'BAD_REQUEST');
  const ping = await ask(session, { ':method': 'GET', ':path': '/' });
  t.equal(ping.status, 200, 'the connection goes on');
});
