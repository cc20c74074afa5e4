import t from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
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
  const result = sidecar('validate', 'examples/sidecar.yaml');
  t.equal(result.status, 0);
  t.match(result.stdout, /^examples\/sidecar\.yaml: ok: 2 listeners, \d+ routes, 1 cluster/);
});

t.test('sidecar validate on a missing file says so', async (t) => {
  const result = sidecar('validate', 'no/such/file.yaml');
  t.equal(result.status, 1);
  t.match(result.stderr, /no\/such\/file\.yaml/);
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
