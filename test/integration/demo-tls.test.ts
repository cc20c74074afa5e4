/**
 * The demo's HTTPS listener: examples/sidecar.yaml with the certificates `npm start` makes
 * on first start (ensureDemoCertificates), in a scratch copy of the repository layout
 * (examples/ next to certs/) on free ports.
 */

import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { ensureDemoCertificates } from '../../src/tls/certificates';
import { serialOf } from '../helpers/certs';
import { startSidecar } from '../helpers/sidecar';
import { curlLocalhost, curlSupportsHttp2, runCurl } from '../helpers/tls-clients';

const ROOT = path.join(__dirname, '..', '..');
const EXAMPLE = path.join(ROOT, 'examples', 'sidecar.yaml');
const { createDemoApp } = require('../../examples/app/server.js') as { createDemoApp: (options?: { log?: boolean }) => http.Server };

t.test('npm start: demo certificates on first start, HTTPS on the second listener', async (t) => {
  const scratch = t.testdir({ examples: {} });
  const certsDir = path.join(scratch, 'certs');
  const first = await ensureDemoCertificates(certsDir);
  t.ok(first.generated, 'generated on first start');
  const again = await ensureDemoCertificates(certsDir);
  t.notOk(again.generated, 'reused on the next start');
  t.equal(serialOf(await fsp.readFile(again.serverCertPath)), serialOf(await fsp.readFile(first.serverCertPath)));

  const app = createDemoApp({ log: false });
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  const appPort = (app.address() as AddressInfo).port;
  const yaml = (await fsp.readFile(EXAMPLE, 'utf8'))
    .replace(/127\.0\.0\.1:(8080|8443|9901)/g, '127.0.0.1:0')
    .replace('http://127.0.0.1:3000', `http://127.0.0.1:${appPort}`);
  const proxy = await startSidecar(yaml, { dir: path.join(scratch, 'examples') });
  t.teardown(async () => {
    await proxy.close();
    app.closeAllConnections();
    await new Promise<void>((resolve) => app.close(() => resolve()));
  });
  const port = proxy.port('https');
  const cacert = ['--cacert', first.caCertPath, ...curlLocalhost(port)];

  const ping = await runCurl([...cacert, `https://localhost:${port}/sidecar-ping`]);
  t.equal(ping.code, 0, `curl --cacert certs/ca.crt https://localhost:8443/ answers: ${ping.stderr}`);
  t.equal(ping.stdout, 'pong\n');
  const home = await runCurl([...cacert, `https://localhost:${port}/`]);
  const body = JSON.parse(home.stdout) as { headers: Record<string, string | null> };
  t.equal(body.headers['x-forwarded-proto'], 'https', 'the demo app sees X-Forwarded-Proto https');
  if (await curlSupportsHttp2()) {
    const h2 = await runCurl([...cacert, '--http2', '--write-out', '%{http_version}', '--output', '/dev/null', `https://localhost:${port}/`]);
    t.equal(h2.stdout, '2', 'and HTTP/2');
  }
  const plain = await fetch(`${proxy.url('ingress')}/sidecar-ping`);
  t.equal(await plain.text(), 'pong\n', 'the plain listener still answers');
});

t.test('on a fresh clone, sidecar validate names the missing certificates and how to make them; --syntax-only passes', async (t) => {
  const scratch = t.testdir({ examples: {} });
  const copy = path.join(scratch, 'examples', 'sidecar.yaml');
  await fsp.copyFile(EXAMPLE, copy);
  const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'dist', 'cli.js'), ...args], { encoding: 'utf8' });
  const full = cli('validate', copy);
  t.equal(full.status, 1, 'run would fail: so does validate');
  const certs = path.join(scratch, 'certs');
  t.match(full.stderr, `listeners[1].tls.cert: ${path.join(certs, 'server.crt')}: file not found`);
  t.match(full.stderr, `sidecar certs --out ${certs} --host`);
  const syntax = cli('validate', '--syntax-only', copy);
  t.equal(syntax.status, 0, syntax.stderr);
  t.match(syntax.stdout, /ok: 2 listeners/);
  t.equal(cli('certs', '--out', certs, '--host', 'localhost').status, 0);
  const after = cli('validate', copy);
  t.equal(after.status, 0, after.stderr);
  t.match(after.stdout, /ok: 2 listeners/);
});
