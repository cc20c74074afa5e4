/**
 * Every way a config file changes is noticed (folder watch, no poll: the poll interval is an
 * hour here), applied whole, and visible in the next request; an invalid file keeps the
 * running config and says why, with path and line, in the log, /config and the metrics.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { appliedText, nextReload, sha256, startSidecarFromFile, writeAtomic, type FileSidecar } from '../helpers/config-file';

/** A config answering `body` on every path; line 9 is the route's directResponse. */
function config(body: string, extra = ''): string {
  return `admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: all
        match: { prefix: / }
${extra}
        directResponse: { status: 200, body: "${body}" }
`;
}

async function body(url: string): Promise<string> {
  const res = await request(url);
  return res.body.text();
}

async function adminJson(running: FileSidecar, route: string): Promise<Record<string, unknown>> {
  const res = await request(`${running.adminUrl()}${route}`);
  return (await res.body.json()) as Record<string, unknown>;
}

async function metric(running: FileSidecar, line: string): Promise<number | undefined> {
  const text = await (await request(`${running.adminUrl()}/metrics`)).body.text();
  const found = text.split('\n').find((l) => l.startsWith(line + ' '));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

async function tempDir(t: Test): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sidecar-reload-'));
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }));
  return dir;
}

async function started(t: Test, file: string, text: string): Promise<FileSidecar> {
  await fsp.writeFile(file, text);
  const running = await startSidecarFromFile(file);
  t.teardown(() => running.close());
  t.equal(await body(running.url()), text.match(/body: "(.*)"/)?.[1], 'serves the first config');
  return running;
}

t.test('in-place write', async (t) => {
  const file = path.join(await tempDir(t), 'sidecar.yaml');
  const running = await started(t, file, config('v1'));
  const v2 = config('v2');
  const applied = appliedText(running.sidecar.reloader, v2);
  await fsp.writeFile(file, v2);
  const outcome = await applied;
  t.equal(outcome.trigger, 'file');
  t.equal(await body(running.url()), 'v2');
  t.equal(await metric(running, 'sidecar_config_reloads_total{result="success"}'), 1, 'one reload (the start is not one)');
});

t.test('atomic rename over the file (vim, sed -i)', async (t) => {
  const file = path.join(await tempDir(t), 'sidecar.yaml');
  const running = await started(t, file, config('v1'));
  const v2 = config('v2');
  const applied = appliedText(running.sidecar.reloader, v2);
  await writeAtomic(file, v2);
  await applied;
  t.equal(await body(running.url()), 'v2');
});

t.test('delete and recreate, at once and after a pause', async (t) => {
  const file = path.join(await tempDir(t), 'sidecar.yaml');
  const running = await started(t, file, config('v1'));

  const v2 = config('v2');
  let applied = appliedText(running.sidecar.reloader, v2);
  await fsp.unlink(file);
  await fsp.writeFile(file, v2);
  await applied;
  t.equal(await body(running.url()), 'v2');

  // Gone long enough to be looked at: reported, and the running config stays.
  const missing = nextReload(running.sidecar.reloader, (o) => o.result === 'rejected');
  await fsp.unlink(file);
  const rejected = await missing;
  t.match(rejected.result === 'rejected' ? rejected.message : '', /does not exist; the running configuration stays/);
  t.equal(await body(running.url()), 'v2', 'a missing file changes nothing');
  const v3 = config('v3');
  applied = appliedText(running.sidecar.reloader, v3);
  await fsp.writeFile(file, v3);
  await applied;
  t.equal(await body(running.url()), 'v3');
});

t.test('Kubernetes ConfigMap: the ..data symlink is swapped to a new folder', async (t) => {
  const dir = await tempDir(t);
  // The layout the kubelet writes: file -> ..data/file, ..data -> ..<timestamp>/
  await fsp.mkdir(path.join(dir, '..2024_01_01_00_00_00.000000001'));
  await fsp.writeFile(path.join(dir, '..2024_01_01_00_00_00.000000001', 'sidecar.yaml'), config('v1'));
  await fsp.symlink('..2024_01_01_00_00_00.000000001', path.join(dir, '..data'));
  await fsp.symlink(path.join('..data', 'sidecar.yaml'), path.join(dir, 'sidecar.yaml'));
  const file = path.join(dir, 'sidecar.yaml');
  const running = await startSidecarFromFile(file);
  t.teardown(() => running.close());
  t.equal(await body(running.url()), 'v1');

  for (const [i, version] of ['v2', 'v3'].entries()) {
    const folder = `..2024_01_01_00_00_0${i + 1}.000000001`;
    const text = config(version);
    const applied = appliedText(running.sidecar.reloader, text);
    // The kubelet's swap: new folder, new link beside ..data, rename over it, old folder removed.
    const previous = await fsp.readlink(path.join(dir, '..data'));
    await fsp.mkdir(path.join(dir, folder));
    await fsp.writeFile(path.join(dir, folder, 'sidecar.yaml'), text);
    await fsp.symlink(folder, path.join(dir, '..data_tmp'));
    await fsp.rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
    await fsp.rm(path.join(dir, previous), { recursive: true });
    await applied;
    t.equal(await body(running.url()), version, `swap ${i + 1} applied`);
  }
});

t.test('POST /reload: applied, unchanged, rejected (with path and line), as JSON', async (t) => {
  const file = path.join(await tempDir(t), 'sidecar.yaml');
  await fsp.writeFile(file, config('v1'));
  const running = await startSidecarFromFile(file, { watchConfig: false });
  t.teardown(() => running.close());

  await fsp.writeFile(file, config('v2'));
  let res = await request(`${running.adminUrl()}/reload`, { method: 'POST' });
  t.equal(res.statusCode, 200);
  const applied = (await res.body.json()) as Record<string, unknown>;
  t.match(applied, { result: 'applied', trigger: 'admin', sha256: sha256(config('v2')), previousSha256: sha256(config('v1')) });
  t.equal(await body(running.url()), 'v2');

  res = await request(`${running.adminUrl()}/reload`, { method: 'POST' });
  t.match(await res.body.json(), { result: 'unchanged', sha256: sha256(config('v2')) });
  t.equal(await metric(running, 'sidecar_config_reloads_total{result="unchanged"}'), 1);

  // Line 8 holds a key the schema does not know.
  await fsp.writeFile(file, config('v3', '        bogus: 1'));
  res = await request(`${running.adminUrl()}/reload`, { method: 'POST' });
  t.equal(res.statusCode, 422);
  const rejected = (await res.body.json()) as { result: string; message: string; errors: Array<{ path: string; line: number }> };
  t.equal(rejected.result, 'rejected');
  t.match(rejected.errors, [{ path: 'listeners[0].routes[0].bogus', line: 8 }]);
  t.match(rejected.message, `${file}:8`);
  t.equal(await body(running.url()), 'v2', 'the last good config keeps serving');

  res = await request(`${running.adminUrl()}/reload`, { method: 'GET' });
  t.equal(res.statusCode, 405, 'GET is not a reload');
  await res.body.dump();
});

t.test('an invalid file keeps the old behaviour and /config, the metrics and the outcome say why', async (t) => {
  const file = path.join(await tempDir(t), 'sidecar.yaml');
  const running = await started(t, file, config('v1'));

  const bad = config('v2', '        timeout: soon');
  const rejection = nextReload(running.sidecar.reloader, (o) => o.result === 'rejected' && o.sha256 === sha256(bad));
  await writeAtomic(file, bad);
  const outcome = await rejection;
  t.match(outcome, { result: 'rejected', trigger: 'file', errors: [{ line: 8 }] });

  t.equal(await body(running.url()), 'v1', 'requests still see the last good config');
  const view = await adminJson(running, '/config');
  t.equal(view.sha256, sha256(config('v1')), '/config describes the running config');
  t.match(String(view.lastReloadError), `${file}:8`);
  t.match(view.lastReload, { result: 'rejected', sha256: sha256(bad) });
  t.equal(await metric(running, 'sidecar_config_last_reload_success'), 0);
  t.equal(await metric(running, 'sidecar_config_reloads_total{result="failure"}'), 1);

  const good = config('v3');
  const applied = appliedText(running.sidecar.reloader, good);
  await writeAtomic(file, good);
  await applied;
  t.equal(await body(running.url()), 'v3');
  t.equal((await adminJson(running, '/config')).lastReloadError, null);
  t.equal(await metric(running, 'sidecar_config_last_reload_success'), 1);
  t.equal(await metric(running, 'sidecar_config_reloads_total{result="failure"}'), 1);
});

t.test('rewriting the same bytes is a no-op, counted as unchanged', async (t) => {
  const file = path.join(await tempDir(t), 'sidecar.yaml');
  const running = await started(t, file, config('v1'));
  const unchanged = nextReload(running.sidecar.reloader, (o) => o.result === 'unchanged');
  await writeAtomic(file, config('v1'));
  t.match(await unchanged, { result: 'unchanged', trigger: 'file', sha256: sha256(config('v1')) });
  t.equal(await metric(running, 'sidecar_config_reloads_total{result="success"}'), 0, 'nothing was applied');
  t.equal(await metric(running, 'sidecar_config_reloads_total{result="unchanged"}'), 1);
});

t.test('a change made before watching began is caught by the first look, not lost', async (t) => {
  const file = path.join(await tempDir(t), 'sidecar.yaml');
  await fsp.writeFile(file, config('v1'));
  const running = await startSidecarFromFile(file, { watchConfig: false });
  t.teardown(() => running.close());
  const v2 = config('v2');
  await fsp.writeFile(file, v2);
  const applied = appliedText(running.sidecar.reloader, v2);
  running.sidecar.reloader.watch({ debounceMs: 50, pollIntervalMs: 3_600_000 });
  t.equal((await applied).trigger, 'poll');
  t.equal(await body(running.url()), 'v2');
});
