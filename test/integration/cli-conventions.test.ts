/** The CLI's conventions: one admin URL variable, durations shown as durations, and messages that say what to do. */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { CLI_PATH } from '../helpers/child-sidecar';
import { loadConfigFile } from '../../src/config/load';
import { EXAMPLES } from '../helpers/examples';
import { closedPort } from '../helpers/upstream';

function cli(cwd: string, args: string[], env: Record<string, string> = {}) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SIDECAR_')));
  return spawnSync(process.execPath, [CLI_PATH, ...args], { cwd, encoding: 'utf8', env: { ...clean, ...env }, timeout: 30_000 });
}

t.test('wait-ready --help shows its default timeout as a duration', async (t) => {
  const help = cli(process.cwd(), ['wait-ready', '--help']);
  t.match(help.stdout, '(default: 30s)');
  t.notMatch(help.stdout, '30000');
  t.match(help.stdout, 'SIDECAR_ADMIN_URL');
});

t.test('wait-ready and status read SIDECAR_ADMIN_URL; SIDECAR_ADMIN still works for wait-ready', async (t) => {
  const port = await closedPort();
  const url = `http://127.0.0.1:${port}`;
  const waited = cli(process.cwd(), ['wait-ready', '--timeout', '200ms'], { SIDECAR_ADMIN_URL: url });
  t.equal(waited.status, 1);
  t.match(waited.stderr, `${url}/ready not ready after 200ms`);
  const old = cli(process.cwd(), ['wait-ready', '--timeout', '200ms'], { SIDECAR_ADMIN: url });
  t.match(old.stderr, `${url}/ready`, 'the former name');
  const status = cli(process.cwd(), ['status'], { SIDECAR_ADMIN_URL: url });
  t.equal(status.status, 1);
  t.match(status.stderr, `127.0.0.1:${port}`);
});

t.test('run without a configuration file says how to pass one', async (t) => {
  const dir = t.testdir({});
  const result = cli(dir, ['run']);
  t.equal(result.status, 1);
  t.equal(result.stderr.trim(), `sidecar: no configuration file at ${path.join(dir, 'sidecar.yaml')}: pass one with -c FILE (or set SIDECAR_CONFIG=FILE)`);
});

t.test('an address without a host says so, with the two usual hosts', async (t) => {
  const dir = t.testdir({ 'sidecar.yaml': 'listeners:\n  - name: a\n    address: "8080"\n    routes:\n      - name: r\n        match: { prefix: / }\n        directResponse: { status: 200 }\nclusters: []\n' });
  const result = cli(dir, ['validate', 'sidecar.yaml']);
  t.equal(result.status, 1);
  t.equal(result.stderr.trim(), 'sidecar.yaml:3:14 listeners[0].address: address "8080" has no host: write 0.0.0.0:8080 (every interface) or 127.0.0.1:8080 (this machine only)');
});

t.test('the demo (npm start) stops at once on Ctrl-C: its drain.delay is 0s', async (t) => {
  const loaded = await loadConfigFile(path.join(EXAMPLES, 'sidecar.yaml'));
  t.ok(loaded.ok);
  if (loaded.ok) t.same(loaded.config.drain, { delayMs: 0, timeoutMs: 5000 });
});
