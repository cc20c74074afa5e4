/**
 * core/file-watch.ts, the one watcher of the config file and the TLS files: several files in
 * several folders, Kubernetes' `..data` swap, and events about other files of the folders.
 */
import t, { type Test } from 'tap';
import fs from 'node:fs';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { watchFileChanges, type WatchTrigger } from '../../src/core/file-watch';
import { waitUntil } from '../helpers/wait';

/** Events only: the poll would trigger on its own and hide a missed event. */
const EVENTS_ONLY = { debounceMs: 1, pollIntervalMs: 3_600_000 };

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sidecar-file-watch-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function recordTriggers(t: Test, files: readonly string[]): WatchTrigger[] {
  const triggers: WatchTrigger[] = [];
  const watcher = watchFileChanges(files, (trigger) => triggers.push(trigger), EVENTS_ONLY);
  t.teardown(() => watcher.close());
  return triggers;
}

/** Resolves once fs.watch has reported `name` in `folder`: by then the watcher under test has seen it too. */
function seen(t: Test, folder: string, name: string): Promise<void> {
  return new Promise((resolve) => {
    const sentinel = fs.watch(folder, { persistent: false }, (_event, changed) => {
      if (changed?.toString() !== name) return;
      sentinel.close();
      setImmediate(resolve);
    });
    t.teardown(() => sentinel.close());
  });
}

t.test('a change of any of the files, in any of their folders, triggers an event', async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, 'a'));
  await mkdir(path.join(dir, 'b'));
  const first = path.join(dir, 'a', 'cert.pem');
  const second = path.join(dir, 'b', 'ca.pem');
  await writeFile(first, 'one');
  await writeFile(second, 'one');
  const triggers = recordTriggers(t, [first, second]);

  // An atomic replace, as certificate tools do: a new inode at the path.
  await writeFile(`${second}.tmp`, 'two');
  await rename(`${second}.tmp`, second);
  await waitUntil(() => triggers.includes('event'), 'an event about the second folder');
  t.same(triggers.filter((x) => x === 'poll'), [], 'no poll was needed');
});

t.test('a Kubernetes ..data swap triggers an event, and the new target folder is watched', async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, '..v1'));
  await writeFile(path.join(dir, '..v1', 'tls.crt'), 'one');
  await symlink('..v1', path.join(dir, '..data'));
  await symlink(path.join('..data', 'tls.crt'), path.join(dir, 'tls.crt'));
  const triggers = recordTriggers(t, [path.join(dir, 'tls.crt')]);

  await mkdir(path.join(dir, '..v2'));
  await writeFile(path.join(dir, '..v2', 'tls.crt'), 'two');
  await symlink('..v2', path.join(dir, '..data_tmp'));
  await rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  await waitUntil(() => triggers.length > 0, 'an event about the swap');

  // The file is now read from ..v2: a write there in place (same inode) is seen too.
  const afterSwap = triggers.length;
  await writeFile(path.join(dir, '..v2', 'tls.crt'), 'three');
  await waitUntil(() => triggers.length > afterSwap, 'an event about the new target');
  t.ok(triggers.every((x) => x === 'event'), 'events, no poll');
});

t.test('other files of a watched folder trigger nothing', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'sidecar.yaml');
  await writeFile(file, 'one');
  const triggers = recordTriggers(t, [file]);

  const other = seen(t, dir, 'editor.swp');
  await writeFile(path.join(dir, 'editor.swp'), 'noise');
  await other;
  // The watcher saw that event in the same turn as the sentinel; a debounce it had started
  // (1ms) would expire before this longer timer, which is created after it.
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.same(triggers, [], 'no trigger for another file');

  // writeFile truncates, then writes: two events, which a 1ms debounce may not merge on a busy machine.
  await writeFile(file, 'two');
  await waitUntil(() => triggers.length >= 1, 'an event about the watched file');
  t.ok(triggers.every((x) => x === 'event'), 'events, no poll');
});

t.test('close stops the watches', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'sidecar.yaml');
  await writeFile(file, 'one');
  const triggers: WatchTrigger[] = [];
  const watcher = watchFileChanges([file], (trigger) => triggers.push(trigger), EVENTS_ONLY);
  watcher.close();
  const written = seen(t, dir, 'sidecar.yaml');
  await writeFile(file, 'two');
  await written;
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.same(triggers, [], 'nothing after close');
});
