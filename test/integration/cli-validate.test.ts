import t from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import { copyFileSync, readdirSync, unlinkSync } from 'node:fs';
import path from 'node:path';

// The real CLI as users run it (`npm test` builds dist/ first).
const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const INVALID_DIR = path.join(ROOT, 'test', 'fixtures', 'config', 'invalid');

function sidecar(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return sidecarWithEnv({}, ...args);
}

/** The CLI with these OTEL_* variables and no others from the test's own environment. */
function sidecarWithEnv(otel: Record<string, string>, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('OTEL_')));
  const result = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...env, ...otel } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The same as `sidecar`, without blocking: several CLI processes run side by side. */
function sidecarAsync(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8' }, (error, stdout, stderr) => {
      const status = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ status, stdout, stderr });
    });
  });
}

t.test('sidecar validate exits 1 on every invalid file, naming the path and line of each error', async (t) => {
  const files = readdirSync(INVALID_DIR).filter((f) => f.endsWith('.yaml'));
  t.ok(files.length >= 10, `${files.length} invalid files`);
  const relativeOf = (file: string): string => path.join('test', 'fixtures', 'config', 'invalid', file);
  const results = new Map<string, Awaited<ReturnType<typeof sidecarAsync>>>();
  const queue = [...files];
  const worker = async (): Promise<void> => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) results.set(file, await sidecarAsync('validate', relativeOf(file)));
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  for (const file of files) {
    const relative = relativeOf(file);
    const result = results.get(file) as Awaited<ReturnType<typeof sidecarAsync>>;
    t.equal(result.status, 1, `${file}: exit 1`);
    const lines = result.stderr.trim().split('\n');
    t.ok(lines.length >= 1, `${file}: at least one error`);
    for (const line of lines) {
      t.match(line, new RegExp(`^${escape(relative)}:\\d+(:\\d+)? \\S+: .+`), `${file}: "${line}" names file, line and path`);
    }
  }
});

t.test('sidecar validate prints a one-line summary and exits 0 on a valid file', async (t) => {
  // --syntax-only: the example's certificates are made by `npm start`, not committed.
  const result = sidecar('validate', '--syntax-only', 'examples/sidecar.yaml');
  t.equal(result.status, 0, result.stderr);
  t.match(result.stdout, /^examples\/sidecar\.yaml: ok: 2 listeners, \d+ routes, 1 cluster/);
});

t.test('sidecar validate shows the tracing the OTEL_* variables give, and where each setting came from', async (t) => {
  const file = 'test/fixtures/config/minimal.yaml';
  const plain = sidecarWithEnv({}, 'validate', file);
  t.equal(plain.status, 0);
  t.match(plain.stdout, /, tracing off\n/, 'no tracing section, no variables: off');
  t.match(plain.stdout, /^tracing: off \(default\)$/m);

  const result = sidecarWithEnv(
    {
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector.example:4318',
      OTEL_SERVICE_NAME: 'orders',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      OTEL_BSP_MAX_QUEUE_SIZE: '100',
    },
    'validate', '--syntax-only',
    file,
  );
  t.equal(result.status, 0, result.stderr);
  t.equal(result.stderr, '', 'no warning');
  const [summary, tracing] = result.stdout.trimEnd().split('\n');
  t.match(summary, /^test\/fixtures\/config\/minimal\.yaml: ok: 1 listener, 1 route, 1 cluster \(1 endpoint\), tracing otlp-http$/, 'the summary names the effective exporter');
  t.match(tracing, /^tracing: exporter otlp-http \(OTEL_TRACES_EXPORTER\)/);
  t.match(tracing, 'endpoint http://collector.example:4318/v1/traces (OTEL_EXPORTER_OTLP_ENDPOINT)');
  t.match(tracing, 'service orders (OTEL_SERVICE_NAME)');
  t.match(tracing, 'sampler parentbased_traceidratio 0.25 (OTEL_TRACES_SAMPLER)');
  t.match(tracing, 'queue 100');

  const disabled = sidecarWithEnv({ OTEL_SDK_DISABLED: 'true' }, 'validate', '--syntax-only', 'test/fixtures/config/full.yaml');
  t.equal(disabled.status, 0);
  t.match(disabled.stdout, /, tracing off\ntracing: off \(OTEL_SDK_DISABLED\)\n$/, 'OTEL_SDK_DISABLED turns off what the file turns on');
});

t.test('sidecar validate: the file wins over the variables; a bad variable is a warning, not an error', async (t) => {
  const result = sidecarWithEnv(
    { OTEL_SERVICE_NAME: 'from-env', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector.example:4318', OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: 'lots' },
    'validate', '--syntax-only',
    'test/fixtures/config/full.yaml',
  );
  t.equal(result.status, 0);
  t.match(result.stdout, 'service orders (file)');
  t.match(result.stdout, 'endpoint http://127.0.0.1:4318/v1/traces (file)');
  t.match(result.stdout, 'sampler parentbased_traceidratio 1 (file)');
  t.equal(result.stderr, '', 'the file sets the sampler: the variables are not read');

  const warned = sidecarWithEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: 'lots' }, 'validate', 'test/fixtures/config/minimal.yaml');
  t.equal(warned.status, 0);
  t.match(warned.stderr, /^test\/fixtures\/config\/minimal\.yaml: warning: tracing: OTEL_TRACES_SAMPLER_ARG=lots is not a ratio from 0 to 1; using 1\.0$/m);
});

t.test('sidecar validate on a missing file says so', async (t) => {
  const result = sidecar('validate', 'no/such/file.yaml');
  t.equal(result.status, 1);
  t.match(result.stderr, /no\/such\/file\.yaml/);
});

/** A TLS listener naming every kind of file `run` reads, with line numbers known to the test. */
const FILES_CONFIG = `admin: { address: 127.0.0.1:0 }
listeners:
  - name: tls
    address: 127.0.0.1:0
    tls:
      cert: certs/server.crt
      key: certs/server.key
      clientCa: certs/ca.crt
      sni:
        - serverNames: [api.example.com]
          cert: certs/api.crt
          key: certs/api.key
    routes:
      - name: ping
        match: { prefix: / }
        directResponse: { status: 200 }
clusters: []
accessLog: { path: logs/access.log }
`;

t.test('sidecar validate checks every file the configuration names, as run reads them', async (t) => {
  // `logs` is a file: run could not create logs/access.log (a missing folder it creates).
  const dir = t.testdir({ 'sidecar.yaml': FILES_CONFIG, logs: '' });
  const file = path.join(dir, 'sidecar.yaml');
  const certs = path.join(dir, 'certs');
  const missing = sidecar('validate', file);
  t.equal(missing.status, 1, 'exit 1');
  const lines = missing.stderr.trim().split('\n');
  const hint = `; to create a local CA and certificates: sidecar certs --out ${certs} --host NAME`;
  t.same(lines, [
    `${file}:6:13 listeners[0].tls.cert: ${path.join(certs, 'server.crt')}: file not found${hint}`,
    `${file}:7:12 listeners[0].tls.key: ${path.join(certs, 'server.key')}: file not found${hint}`,
    `${file}:11:17 listeners[0].tls.sni[0].cert: ${path.join(certs, 'api.crt')}: file not found${hint}`,
    `${file}:12:16 listeners[0].tls.sni[0].key: ${path.join(certs, 'api.key')}: file not found${hint}`,
    `${file}:8:17 listeners[0].tls.clientCa: ${path.join(certs, 'ca.crt')}: file not found`,
    `${file}:18:20 accessLog.path: ${path.join(dir, 'logs', 'access.log')}: cannot be created: ${path.join(dir, 'logs')} is not a folder`,
  ]);
  t.equal(missing.stdout, '', 'no summary');

  // `run` fails on the same file: validate and run agree.
  const run = spawnSync(process.execPath, [CLI, 'run', '-c', file], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  t.equal(run.status, 1, 'run exits 1 too');
  t.match(run.stderr, /server\.crt|logs/, 'naming a file that validate named');

  const syntaxOnly = sidecar('validate', '--syntax-only', file);
  t.equal(syntaxOnly.status, 0, `--syntax-only checks the file alone ${syntaxOnly.stderr}`);

  t.equal(sidecar('certs', '--out', certs, '--host', 'localhost', '--client', 'c').status, 0);
  unlinkSync(path.join(dir, 'logs'));
  copyFileSync(path.join(certs, 'server.crt'), path.join(certs, 'api.crt'));
  copyFileSync(path.join(certs, 'client.key'), path.join(certs, 'api.key'));
  const mismatch = sidecar('validate', file);
  t.equal(mismatch.status, 1, 'a key that does not match its certificate');
  t.equal(mismatch.stderr.trim(), `${file}:12:16 listeners[0].tls.sni[0].key: ${path.join(certs, 'api.key')}: does not match the certificate ${path.join(certs, 'api.crt')}`);

  copyFileSync(path.join(certs, 'server.key'), path.join(certs, 'api.key'));
  const ok = sidecar('validate', file);
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, `${file}: ok: 1 listener`);
});

t.test('sidecar schema prints a JSON Schema that rejects unknown keys', async (t) => {
  const result = sidecar('schema');
  t.equal(result.status, 0);
  const schema = JSON.parse(result.stdout) as { additionalProperties?: boolean; properties?: Record<string, unknown> };
  t.equal(schema.additionalProperties, false);
  t.ok(schema.properties?.listeners, 'describes listeners');
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
