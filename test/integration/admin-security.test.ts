/**
 * The admin listener: loopback unless a token is set, the token guards everything but the
 * probes, a wrong token is refused whatever its shape, and /config never shows secrets.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { EMBEDDED_SOURCE, parseConfigText } from '../../src/config/load';
import { makeTestPki } from '../helpers/certs';
import { connect, closed } from '../helpers/raw';
import { startSidecar } from '../helpers/sidecar';

const TOKEN = 'c0rrect-h0rse-battery-staple-0123456789';

function adminYaml(admin: string): string {
  return `${admin}
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: ping, match: { path: /ping }, directResponse: { status: 200, body: pong } }
`;
}

t.test('a non-loopback admin address needs a token: loader error with path and line', async (t) => {
  for (const address of ['0.0.0.0:9901', '"[::]:9901"', '10.1.2.3:9901', 'admin.example.com:9901']) {
    const result = parseConfigText(adminYaml(`admin:\n  address: ${address}`), EMBEDDED_SOURCE);
    t.notOk(result.ok, `${address} without a token is refused`);
    if (result.ok) continue;
    t.same(result.errors.map((e) => [e.path, e.line]), [['admin.address', 2]], `${address}: one error at admin.address, line 2`);
    t.match(result.errors[0].message, /is not a loopback address: set admin\.token/);
  }
  for (const address of ['127.0.0.1:9901', '127.0.0.53:9901', '"[::1]:9901"', 'localhost:9901']) {
    t.ok(parseConfigText(adminYaml(`admin:\n  address: ${address}`), EMBEDDED_SOURCE).ok, `${address} needs no token`);
  }
  t.ok(parseConfigText(adminYaml(`admin:\n  address: 0.0.0.0:9901\n  token: ${TOKEN}`), EMBEDDED_SOURCE).ok, 'with a token it loads');
  t.ok(parseConfigText(adminYaml(''), EMBEDDED_SOURCE).ok, 'the default (loopback) needs no token');
});

t.test('the token guards every endpoint but /live and /ready', async (t) => {
  const proxy = await startSidecar(adminYaml(`admin: { address: 127.0.0.1:0, token: ${TOKEN} }`));
  t.teardown(() => proxy.close());

  for (const open of ['/live', '/ready', '/live?verbose=1']) {
    const res = await request(proxy.adminUrl + open);
    await res.body.text();
    t.equal(res.statusCode, 200, `${open} without a token`);
  }

  const wrong: Array<[string, string | undefined]> = [
    ['no header', undefined],
    ['empty', ''],
    ['the token without the scheme', TOKEN],
    ['lower-case scheme', `bearer ${TOKEN}`],
    ['a prefix of the token', `Bearer ${TOKEN.slice(0, -1)}`],
    ['the token and more', `Bearer ${TOKEN}x`],
    ['another token of the same length', `Bearer ${'x'.repeat(TOKEN.length)}`],
    ['Basic scheme', `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}`],
  ];
  for (const target of ['/config', '/metrics', '/nonexistent', '/live/../config', '//config', '/config?x=/live']) {
    for (const [what, authorization] of wrong) {
      const res = await request(proxy.adminUrl + target, { headers: authorization === undefined ? {} : { authorization } });
      const body = await res.body.text();
      t.equal(res.statusCode, 401, `${target}, ${what}: 401`);
      t.notMatch(body, /sidecar_|listeners/, `${target}, ${what}: nothing leaks`);
    }
  }
  for (const target of ['/config', '/metrics']) {
    const res = await request(proxy.adminUrl + target, { headers: { authorization: `Bearer ${TOKEN}` } });
    await res.body.text();
    t.equal(res.statusCode, 200, `${target} with the token`);
  }
});

t.test('/config shows neither the token nor key material', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-admin-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pki = await makeTestPki(dir);
  const proxy = await startSidecar(
    `
admin: { address: 127.0.0.1:0, token: ${TOKEN} }
listeners:
  - name: main
    address: 127.0.0.1:0
    tls: { cert: ${pki.serverCertPath}, key: ${pki.serverKeyPath}, clientCa: ${pki.caCertPath} }
    routes:
      - { name: ping, match: { path: /ping }, directResponse: { status: 200, body: pong } }
`,
    { dir },
  );
  t.teardown(() => proxy.close());
  const res = await request(`${proxy.adminUrl}/config`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const body = await res.body.text();
  t.equal(res.statusCode, 200);
  t.notMatch(body, TOKEN, 'the token is not shown');
  t.notMatch(body, /PRIVATE KEY|BEGIN CERTIFICATE/, 'no PEM block');
  const keyLines = pki.serverKey.toString('utf8').split('\n').filter((line) => line.length > 20 && !line.startsWith('-----'));
  t.ok(keyLines.length > 0);
  t.notOk(keyLines.some((line) => body.includes(line)), 'no line of the private key');
  t.match(body, pki.serverKeyPath, 'the key file path is shown (it is not a secret)');
  const metrics = await request(`${proxy.adminUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  t.notMatch(await metrics.body.text(), TOKEN, '/metrics does not show the token either');
});

t.test('a slow client cannot pin the admin listener', async (t) => {
  const proxy = await startSidecar(adminYaml('admin: { address: 127.0.0.1:0 }'));
  t.teardown(() => proxy.close());
  const socket = await connect(proxy.sidecar.admin.port);
  socket.write('GET /ready HTTP/1.1\r\n');
  // The admin headersTimeout is 5 s; Node's default would be 60 s.
  t.ok(await closed(socket, 20_000), 'closed by the admin listener');
  const res = await request(`${proxy.adminUrl}/ready`);
  t.equal(await res.body.text(), 'ready\n', 'the probes still answer');
});

t.test('a reload that changes the token takes effect at once', async (t) => {
  const proxy = await startSidecar(adminYaml(`admin: { address: 127.0.0.1:0, token: ${TOKEN} }`));
  t.teardown(() => proxy.close());
  const status = async (token: string): Promise<number> => {
    const res = await request(`${proxy.adminUrl}/config`, { headers: { authorization: `Bearer ${token}` } });
    await res.body.text();
    return res.statusCode;
  };
  t.equal(await status(TOKEN), 200, 'the first token works');
  const next = `${TOKEN}-rotated`;
  // The same address as written (port 0): the admin listener stays, only its token changes.
  const loaded = parseConfigText(adminYaml(`admin: { address: 127.0.0.1:0, token: ${next} }`), EMBEDDED_SOURCE);
  if (!loaded.ok) throw new Error('test config is invalid');
  const applied = await proxy.sidecar.applyConfig(loaded.config);
  t.ok(applied.ok, 'the reload is applied');
  t.equal(await status(TOKEN), 401, 'the old token is refused after the reload');
  t.equal(await status(next), 200, 'the new token works');
});
