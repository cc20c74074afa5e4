/**
 * The edge steps over HTTP/2 (TLS listener with client certificates): access by certificate
 * SAN, a CORS preflight, and a compressed response streamed into an HTTP/2 stream.
 */
import { once } from 'node:events';
import type http2 from 'node:http2';
import path from 'node:path';
import * as zlib from 'node:zlib';
import t from 'tap';
import { makeTestPki } from '../helpers/certs';
import { mtlsListenerTls, startSidecarWith } from '../helpers/sidecar';
import { connectH2 } from '../helpers/tls-clients';
import { startUpstream } from '../helpers/upstream';

const TEXT = 'edge policies over HTTP/2 '.repeat(2_000);

async function h2Raw(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: Buffer }> {
  const stream = session.request({ ':method': 'GET', ':path': '/', ...headers });
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  // Listened to at once: a 204's HEADERS frame ends the stream, 'end' follows 'response' in the same tick.
  const ended = once(stream, 'end');
  const [responseHeaders] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader];
  await ended;
  return { status: Number(responseHeaders[':status']), headers: responseHeaders, body: Buffer.concat(chunks) };
}

t.test('edge steps over HTTP/2', async (t) => {
  const pki = await makeTestPki(path.join(t.testdir(), 'pki'), { clientUris: ['spiffe://cluster.local/ns/billing/sa/billing'] });
  const app = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(TEXT);
  });
  const proxy = await startSidecarWith(t, `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: mutual
    address: 127.0.0.1:0
${mtlsListenerTls(pki)}
    routes:
      - name: orders
        match: { prefix: /orders }
        cluster: app
        access: { clientCertSans: ["spiffe://cluster.local/ns/orders/sa/orders"] }
      - name: billing
        match: { prefix: / }
        cluster: app
        access: { clientCertSans: ["spiffe://cluster.local/ns/billing/sa/billing"] }
        cors: { allowOrigins: [https://app.example] }
        compression: { algorithms: [gzip] }
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`, [app]);
  const session = await connectH2(proxy.port(), { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });
  t.teardown(() => session.close());

  const compressed = await h2Raw(session, { ':path': '/invoices', 'accept-encoding': 'gzip', origin: 'https://app.example' });
  t.equal(compressed.status, 200, 'the billing certificate is admitted');
  t.equal(compressed.headers['content-encoding'], 'gzip');
  t.equal(compressed.headers['access-control-allow-origin'], 'https://app.example');
  t.equal(zlib.gunzipSync(compressed.body).toString(), TEXT, 'the HTTP/2 stream carries the whole gzip body');

  const denied = await h2Raw(session, { ':path': '/orders/1' });
  t.equal(denied.status, 403, 'a route admitting another workload refuses this one');
  t.equal(denied.headers['x-sidecar-error'], 'ACCESS_DENIED');

  const preflight = await h2Raw(session, { ':method': 'OPTIONS', ':path': '/invoices', origin: 'https://app.example', 'access-control-request-method': 'GET' });
  t.equal(preflight.status, 204);
  t.equal(preflight.headers['access-control-allow-origin'], 'https://app.example');
});
