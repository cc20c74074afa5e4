import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { SPAN_KIND, startOtlpReceiver } from '../helpers/otlp-receiver';
import { startUpstream } from '../helpers/upstream';

// `sidecar run` as users start it: OpenTelemetry is registered (as sdk-node registers it) before the
// proxy modules load, the OTEL_* variables apply, and stopping flushes the last spans.
const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const LOAD_ORDER = path.join(ROOT, 'test', 'fixtures', 'load-order.js');
const READY_TIMEOUT_MS = 20_000;

t.test('sidecar run: spans reach the collector named by OTEL_* variables, with the service name they give', async (t) => {
  const receiver = await startOtlpReceiver();
  const seen: string[][] = [];
  const app = await startUpstream((req, res) => {
    seen.push(req.rawHeaders.filter((_, i) => i % 2 === 0 && req.rawHeaders[i].toLowerCase() === 'traceparent'));
    res.end('ok');
  });
  t.teardown(async () => {
    await app.close();
    await receiver.close();
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-run-'));
  const config = path.join(dir, 'sidecar.yaml');
  // The tracing section names neither the endpoint nor the service: the environment does.
  writeFileSync(
    config,
    `admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes: [{ name: all, match: { prefix: / }, cluster: app }]
clusters: [{ name: app, endpoints: [{ url: "${app.url}" }] }]
tracing: { propagators: [tracecontext] }
accessLog: { path: off }
drain: { delay: 0ms, timeout: 10s }
`,
  );
  const child = spawn(process.execPath, ['-r', LOAD_ORDER, CLI, 'run', '-c', config], {
    cwd: ROOT,
    env: { ...process.env, OTEL_SERVICE_NAME: 'cli-orders', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '60000', SIDECAR_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const ready = new Promise<{ listener: string; admin: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready in ${READY_TIMEOUT_MS}ms:\n${stderr}`)), READY_TIMEOUT_MS);
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
      const line = stderr.split('\n').find((l) => l.includes('"sidecar ready"'));
      if (line === undefined) return;
      clearTimeout(timer);
      const parsed = JSON.parse(line) as { listeners: string[]; admin: string };
      resolve({ listener: parsed.listeners[0].split('@')[1], admin: parsed.admin });
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code}:\n${stderr}`)));
  });
  const { listener } = await ready;

  t.match(stderr, /load-order: undici loaded while the tracer provider is TracerProvider/, 'the SDK was registered before undici was loaded');
  const tracingLine = JSON.parse(stderr.split('\n').find((l) => l.includes('"tracing started"')) ?? '{}') as { sources?: Record<string, string>; serviceName?: string };
  t.same(tracingLine.sources, { exporter: 'default', endpoint: 'OTEL_EXPORTER_OTLP_ENDPOINT', serviceName: 'OTEL_SERVICE_NAME', sampler: 'default' }, 'the log says where each setting came from');

  const traceId = '5b8aa5a2d2c872e8321cf37308d69df2';
  const res = await request(`http://${listener}/hello`, { headers: { traceparent: `00-${traceId}-051581bf3cb55c13-01` } });
  await res.body.text();
  t.equal(res.statusCode, 200);
  t.equal(seen[0].length, 1, 'the app got one traceparent');

  // The batch delay is a minute: only the flush on stop can deliver the spans now.
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  t.equal(code, 0, 'a clean exit');
  const spans = await receiver.waitFor((s) => s.length >= 2, 5_000).catch((error: Error) => {
    throw new Error(`${error.message}\nsidecar stderr:\n${stderr}`);
  });
  const server = spans.find((s) => s.kind === SPAN_KIND.SERVER);
  t.equal(server?.traceId, traceId);
  t.equal(server?.resource['service.name'], 'cli-orders', 'OTEL_SERVICE_NAME names the service');
  t.equal(spans.filter((s) => s.kind === SPAN_KIND.CLIENT).length, 1);
});
