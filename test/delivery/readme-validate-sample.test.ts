/**
 * The README's sample `sidecar validate bad.yaml` output is what validate prints: a file with
 * the two mistakes the sample names, at the lines and columns it names, is validated from a
 * folder outside the repository (as a user runs it) and the output compared line by line.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../helpers/examples';

const CLI = path.join(ROOT, 'dist', 'cli.js');

// Line 9 column 18: the timeout's value; line 12 column 18: the cluster's value.
const BAD_YAML = `admin:
  address: 127.0.0.1:9901
listeners:
  - name: ingress
    address: 0.0.0.0:8080
    routes:
      - name: api
        match: { prefix: /api }
        timeout: 5 parsecs
        cluster: app
      - name: web
        cluster: ap
        match: { prefix: / }
clusters:
  - name: app
    endpoints: [{ url: http://127.0.0.1:3000 }]
`;

t.test('the README\'s validate sample is the output of validate, run from a user\'s folder', async (t) => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const sample = /^```\n\$ sidecar validate bad\.yaml\n([\s\S]*?)^```$/m.exec(readme);
  if (sample === null) throw new Error('the README has no `$ sidecar validate bad.yaml` sample');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sidecar-readme-validate-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'bad.yaml'), BAD_YAML);
  const run = spawnSync(process.execPath, [CLI, 'validate', 'bad.yaml'], { cwd: dir, encoding: 'utf8' });
  t.equal(run.status, 1, 'exit 1 for an invalid file');
  const printed = (run.stdout + run.stderr).trimEnd().split('\n');
  t.same(printed, sample[1].trimEnd().split('\n'), 'the same lines, word for word');
});
