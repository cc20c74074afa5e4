import t from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import { copyFileSync, readdirSync, unlinkSync } from 'node:fs';
import path from 'node:path';

// The real CLI as users run it (`npm test` builds dist/ first).
const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const INVALID_DIR = path.join(ROOT, 'test', 'fixtures', 'config', 'invalid');

function sidecar(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8' });
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
