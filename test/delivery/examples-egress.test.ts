/**
 * examples/egress run as its README says: the certificates from `sidecar certs` (the README's
 * command), payments.js as the remote API, the sidecar on examples/egress/sidecar.yaml (its
 * fixed ports swapped for free ones, tracing sent to a local receiver), and the README's calls:
 * the app's plain-HTTP call with Host: payments.example reaches the API over verified TLS with
 * the Host rewritten, a client span per attempt and the traceparent continued; /flaky is
 * retried; CONNECT to an allowed destination tunnels and to another one gets 403.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { EXAMPLES, sidecarCli } from '../helpers/examples';
import { startOtlpReceiver, SPAN_KIND } from '../helpers/otlp-receiver';
import { startSidecar } from '../helpers/sidecar';
import { runCurl } from '../helpers/tls-clients';

const FOLDER = path.join(EXAMPLES, 'egress');
const README = readFileSync(path.join(FOLDER, 'README.md'), 'utf8');
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const APP_SPAN_ID = '00f067aa0ba902b7';

/** The README's `sidecar certs` line, pointed at `out` instead of examples/egress/certs. */
function certsCommandArgs(out: string): string[] {
  const line = README.split('\n').find((l) => l.startsWith('node dist/cli.js certs '));
  if (line === undefined) throw new Error('the README has no `node dist/cli.js certs` line');
  const args = line.replace(/^node dist\/cli\.js /, '').split(/\s+/);
  const at = args.indexOf('--out');
  args[at + 1] = out;
  return args;
}

/** payments.js on a free port; resolves with the port it printed. */
function startPayments(certs: string): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, [path.join(FOLDER, 'payments.js'), '--port', '0', '--certs', certs], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      out += chunk;
      const m = /payments: listening on (\d+)/.exec(out);
      if (m) resolve({ port: Number(m[1]), child });
    });
    child.once('exit', (code) => reject(new Error(`payments.js exited (${code}) before listening: ${out}`)));
  });
}

t.test('the egress example, run as its README says', async (t) => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sidecar-egress-example-'));
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }));
  const certs = path.join(dir, 'certs');
  const issued = sidecarCli(...certsCommandArgs(certs));
  t.equal(issued.status, 0, `the README's certs command succeeds: ${issued.stderr}`);

  const payments = await startPayments(certs);
  t.teardown(() => void payments.child.kill());
  const receiver = await startOtlpReceiver();
  t.teardown(() => receiver.close());

  // The example's file with its fixed ports swapped for free ones; relative paths resolve in `dir`.
  const yaml = readFileSync(path.join(FOLDER, 'sidecar.yaml'), 'utf8')
    .replace('127.0.0.1:15001', '127.0.0.1:0')
    .replace('127.0.0.1:9902', '127.0.0.1:0')
    .replaceAll(':9443', `:${payments.port}`)
    .replace('http://127.0.0.1:4318', receiver.url)
    .replace('accessLog: { path: stdout }', '');
  t.not(yaml, readFileSync(path.join(FOLDER, 'sidecar.yaml'), 'utf8'));
  const sidecar = await startSidecar(yaml, { dir });
  t.teardown(() => sidecar.close());
  const egress = sidecar.url();

  // The app's call.
  const charge = await request(`${egress}/charges/42`, { headers: { host: 'payments.example', traceparent: `00-${TRACE_ID}-${APP_SPAN_ID}-01` } });
  t.equal(charge.statusCode, 200);
  const seen = (await charge.body.json()) as { path: string; host: string; traceparent: string; attempt: string };
  t.equal(seen.path, '/charges/42');
  t.equal(seen.host, 'payments.example', 'hostRewrite');
  const [, traceId, parentId] = seen.traceparent.split('-');
  t.equal(traceId, TRACE_ID, 'the trace continues the app\'s');
  t.not(parentId, APP_SPAN_ID, 'the parent is the sidecar\'s client span, not the app\'s span');

  const flaky = await request(`${egress}/flaky`, { headers: { host: 'payments.example' } });
  t.equal(flaky.statusCode, 200, 'the 503 was retried');
  t.equal(((await flaky.body.json()) as { attempt: string }).attempt, '2');

  await sidecar.sidecar.tracing.forceFlush();
  const spans = await receiver.waitFor((s) => s.filter((span) => span.kind === SPAN_KIND.CLIENT).length >= 3);
  const clients = spans.filter((s) => s.kind === SPAN_KIND.CLIENT && s.traceId === TRACE_ID);
  t.equal(clients.length, 1, 'one client span for the charge');
  t.equal(clients[0]?.spanId, parentId, 'the API saw that span as its parent');
  const flakyServer = spans.find((s) => s.kind === SPAN_KIND.SERVER && s.attributes['url.path'] === '/flaky');
  t.equal(spans.filter((s) => s.kind === SPAN_KIND.CLIENT && s.traceId === flakyServer?.traceId).length, 2, 'a client span per attempt of /flaky');

  // HTTP_PROXY mode, the README's two curl calls.
  const tunnelled = await runCurl(['--proxy', egress, '--cacert', path.join(certs, 'ca.crt'), `https://localhost:${payments.port}/charges/7`]);
  t.equal(tunnelled.code, 0, tunnelled.stderr);
  t.match(tunnelled.stdout, /"path":"\/charges\/7"/);
  const denied = await runCurl(['--proxy', egress, 'https://example.com/']);
  t.not(denied.code, 0);
  t.match(denied.stderr, /403/, 'EGRESS_DENIED');
  t.match(README, /curl -s --proxy http:\/\/127\.0\.0\.1:15001 https:\/\/example\.com\//, 'the README shows the denied call');
});
