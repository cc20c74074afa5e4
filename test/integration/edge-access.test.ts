/**
 * routes[].access: peer addresses (CIDR allow/deny, read from the connection, never from
 * X-Forwarded-For) and mTLS client-certificate SANs; a refused client gets 403 ACCESS_DENIED
 * and the app never sees the request.
 */
import { once } from 'node:events';
import path from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { issueClientCertificate, makeTestPki } from '../helpers/certs';
import { mtlsListenerTls, startSidecarWith } from '../helpers/sidecar';
import { httpsRequest } from '../helpers/tls-clients';
import { startUpstream } from '../helpers/upstream';
import { openWs, refusedWs, startWsEchoApp } from '../helpers/websocket';

t.test('CIDR allow and deny', async (t) => {
  let reached = 0;
  const app = await startUpstream((_req, res) => {
    reached++;
    res.end('app');
  });
  const proxy = await startSidecarWith(t, `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    trustedProxies: [127.0.0.0/8]
    routes:
      - { name: private, match: { prefix: /private }, cluster: app, access: { allow: [10.0.0.0/8] } }
      - { name: denied, match: { prefix: /denied }, cluster: app, access: { allow: [127.0.0.0/8], deny: [127.0.0.1] } }
      - { name: local, match: { prefix: /local }, cluster: app, access: { allow: ["127.0.0.0/8", "::1"] } }
      - { name: open, match: { prefix: / }, cluster: app }
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`, [app]);
  const base = proxy.url();

  const local = await request(`${base}/local/x`);
  t.equal(local.statusCode, 200, 'an allowed address reaches the app');
  t.equal(await local.body.text(), 'app');

  // A forwarded address is the client's word, even from a trusted proxy: access reads the connection.
  const forged = await request(`${base}/private/x`, { headers: { 'x-forwarded-for': '10.1.2.3' } });
  t.equal(forged.statusCode, 403, 'an address outside allow is refused, whatever X-Forwarded-For says');
  t.equal(forged.headers['x-sidecar-error'], 'ACCESS_DENIED');
  const body = (await forged.body.json()) as { error: string; message: string };
  t.equal(body.error, 'ACCESS_DENIED');
  t.match(body.message, /127\.0\.0\.1 is not allowed/);

  const denied = await request(`${base}/denied/x`);
  t.equal(denied.statusCode, 403, 'deny wins over allow');
  await denied.body.dump();

  const before = reached;
  const post = await request(`${base}/private/x`, { method: 'POST', body: 'x'.repeat(100_000) });
  t.equal(post.statusCode, 403, 'a refused request with a body is answered');
  await post.body.dump();
  t.equal(reached, before, 'refused requests never reach the app');

  const open = await request(`${base}/other`);
  t.equal(open.statusCode, 200, 'a route without access rules admits everyone');
  await open.body.dump();
  const line = proxy.accessLog.find((l) => l.route === 'private');
  t.equal(line?.flags, 'RBAC', 'the access log flags the refusal');
  t.equal(line?.status, 403);
});

t.test('client-certificate SANs over mTLS', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(path.join(dir, 'pki'), { clientUris: ['spiffe://cluster.local/ns/billing/sa/billing'] });
  // A second workload from the same CA, with another identity.
  const { cert: otherCert, key: otherKey } = await issueClientCertificate(pki.dir, path.join(dir, 'other'), 'orders', ['spiffe://cluster.local/ns/orders/sa/orders']);

  const app = await startUpstream((_req, res) => res.end('billing app'));
  const proxy = await startSidecarWith(t, `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: mutual
    address: 127.0.0.1:0
${mtlsListenerTls(pki)}
    routes:
      - name: billing
        match: { prefix: /billing }
        cluster: app
        access: { clientCertSans: ["spiffe://cluster.local/ns/billing/sa/billing"] }
      - { name: rest, match: { prefix: / }, cluster: app }
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`, [app]);
  const port = proxy.port();

  const billing = await httpsRequest({ port, ca: pki.ca, cert: pki.clientCert, key: pki.clientKey, path: '/billing/invoices' });
  t.equal(billing.status, 200, 'the billing workload is admitted');
  t.equal(billing.body, 'billing app');

  const orders = await httpsRequest({ port, ca: pki.ca, cert: otherCert, key: otherKey, path: '/billing/invoices' });
  t.equal(orders.status, 403, 'another workload of the same CA is refused');
  t.equal(orders.headers['x-sidecar-error'], 'ACCESS_DENIED');
  t.match(orders.body, /names none of the identities/);

  const ordersElsewhere = await httpsRequest({ port, ca: pki.ca, cert: otherCert, key: otherKey, path: '/other' });
  t.equal(ordersElsewhere.status, 200, 'the other workload still reaches routes without the rule');
});

t.test('clientCertSans on a listener without client certificates refuses everyone', async (t) => {
  const app = await startUpstream((_req, res) => res.end('app'));
  const proxy = await startSidecarWith(t, `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: plain
    address: 127.0.0.1:0
    routes:
      - { name: billing, match: { prefix: / }, cluster: app, access: { clientCertSans: ["spiffe://cluster.local/ns/billing/sa/billing"] } }
clusters:
  - { name: app, endpoints: [{ url: ${app.url} }] }
`, [app]);
  const res = await request(`${proxy.url()}/`, { headers: { 'x-forwarded-client-cert': 'URI=spiffe://cluster.local/ns/billing/sa/billing' } });
  t.equal(res.statusCode, 403, 'a forged x-forwarded-client-cert is no certificate');
  t.match(await res.body.text(), /needs a client certificate/);
});

t.test('WebSocket upgrades meet the same access rules', async (t) => {
  const app = await startWsEchoApp();
  const proxy = await startSidecarWith(t, `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: private, match: { prefix: /private }, cluster: app, access: { allow: [10.0.0.0/8] } }
      - { name: open, match: { prefix: / }, cluster: app, access: { allow: [127.0.0.1/32] } }
clusters:
  - { name: app, endpoints: [{ url: ${app.upstream.url} }] }
`, [app]);
  const wsBase = proxy.url().replace('http://', 'ws://');
  const refused = await refusedWs(`${wsBase}/private/socket`);
  t.equal(refused.status, 403, 'the upgrade is refused');
  t.equal(refused.headers['x-sidecar-error'], 'ACCESS_DENIED');
  t.equal(app.handshakes.length, 0, 'the app never saw the handshake');
  const ws = await openWs(`${wsBase}/socket`);
  ws.send('hi');
  const [echo] = (await once(ws, 'message')) as [Buffer];
  t.equal(String(echo), 'hi', 'an allowed client gets its tunnel');
  ws.close();
});
