/**
 * After a rejected reload, putting the running configuration back in the file is said at
 * info level ("config restored"), like "config applied": the error logged for the rejection
 * is no longer pending. A plain rewrite of the same bytes stays at debug level.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { nextReload, sha256, startSidecarFromFile, writeAtomic } from '../helpers/config-file';
import { captureLogger } from '../helpers/tls-clients';

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

t.test('fixing a rejected file back to the running config logs "config restored"', async (t) => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sidecar-restored-'));
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sidecar.yaml');
  const good = config('v1');
  await fsp.writeFile(file, good);
  const log = captureLogger();
  const running = await startSidecarFromFile(file, { logger: log.logger });
  t.teardown(() => running.close());

  // A rewrite of the running bytes with nothing rejected before: not a restoration.
  const touched = nextReload(running.sidecar.reloader, (o) => o.result === 'unchanged');
  await writeAtomic(file, good);
  await touched;
  t.same(log.lines.filter((line) => String(line.msg).startsWith('config restored')), [], 'nothing to restore yet');

  const bad = config('v2', '        timeout: soon');
  const rejected = nextReload(running.sidecar.reloader, (o) => o.result === 'rejected' && o.sha256 === sha256(bad));
  await writeAtomic(file, bad);
  await rejected;
  const rejectedAt = log.lines.length;

  const restored = nextReload(running.sidecar.reloader, (o) => o.result === 'unchanged');
  await writeAtomic(file, good);
  await restored;
  const line = await log.waitFor((l) => String(l.msg).startsWith('config restored'), 5_000, rejectedAt);
  t.equal(line.level, 30, 'at info level');
  t.equal((line as { sha256?: string }).sha256, sha256(good));
  const view = (await (await request(`${running.adminUrl()}/config`)).body.json()) as { lastReloadError: unknown };
  t.equal(view.lastReloadError, null, '/config no longer shows the rejection');
  const metrics = await (await request(`${running.adminUrl()}/metrics`)).body.text();
  t.match(metrics, /^sidecar_config_last_reload_success 1$/m);
});
