import fs from 'node:fs';
import path from 'node:path';

/** Editors and `kubectl` touch a file several times per save; one look after the burst is enough. */
export const DEFAULT_CONFIG_WATCH_DEBOUNCE_MS = 150;
/** The backstop for file systems where fs.watch misses events (network mounts, some overlays). */
export const DEFAULT_CONFIG_POLL_INTERVAL_MS = 2_000;

/**
 * Why the watcher looked at the file: `event` after file-system events about it (debounced),
 * `poll` on the backstop timer. A poll finding nothing new must stay silent; an event finding
 * nothing new is worth counting (someone touched or re-wrote the file with the same bytes).
 */
export type WatchTrigger = 'event' | 'poll';

export interface ConfigFileWatcher {
  close(): void;
}

export interface WatchConfigFileOptions {
  readonly debounceMs?: number;
  readonly pollIntervalMs?: number;
}

/**
 * Calls `onTrigger` when the configuration file may have changed; the caller compares
 * content hashes (see lifecycle/reloader.ts), so a spurious trigger costs one read.
 *
 * The FOLDER is watched, never the file: an atomic rename (vim, `sed -i`, most deploy tools)
 * and a delete + recreate give the path a new inode that a watch on the old one never sees;
 * a Kubernetes ConfigMap swaps the `..data` symlink next to the file, so the file's own path
 * does not change at all. When the path is a symlink into another folder, that folder is
 * watched as well (re-resolved after every event, since the target changes with each swap).
 * Neither the watches nor the poll timer keep the process alive.
 */
export function watchConfigFile(
  file: string,
  onTrigger: (trigger: WatchTrigger) => void,
  options: WatchConfigFileOptions = {},
): ConfigFileWatcher {
  const debounceMs = options.debounceMs ?? DEFAULT_CONFIG_WATCH_DEBOUNCE_MS;
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_CONFIG_POLL_INTERVAL_MS;
  const absolute = path.resolve(file);
  const ownFolder = path.dirname(absolute);
  const watchers = new Map<string, fs.FSWatcher>();
  let debounce: NodeJS.Timeout | undefined;
  let closed = false;

  // Names whose change can change what `absolute` reads: the file itself, Kubernetes' `..data`
  // link, and (for a symlink) the current target. A null name means the platform did not say.
  const relevantNames = (): Set<string> => {
    const names = new Set([path.basename(absolute), '..data']);
    const target = resolvedTarget(absolute);
    if (target !== undefined) names.add(path.basename(target));
    return names;
  };
  let relevant = relevantNames();

  const fire = (): void => {
    debounce = undefined;
    if (closed) return;
    relevant = relevantNames();
    syncWatches();
    onTrigger('event');
  };
  const onEvent = (_event: string, name: string | Buffer | null): void => {
    if (closed) return;
    if (name !== null && !relevant.has(name.toString())) return;
    if (debounce !== undefined) clearTimeout(debounce);
    debounce = setTimeout(fire, debounceMs);
    debounce.unref();
  };
  const watchFolder = (folder: string): void => {
    if (watchers.has(folder)) return;
    try {
      const watcher = fs.watch(folder, { persistent: false }, onEvent);
      watcher.on('error', () => {
        // The folder went away (e.g. an old `..2024_…` ConfigMap folder); the poll re-adds
        // watches for folders that exist again.
        watcher.close();
        watchers.delete(folder);
      });
      watchers.set(folder, watcher);
    } catch {
      // Not there (yet): the next poll tries again.
    }
  };
  /** Watches the file's folder and the folder of its symlink target; drops stale target folders. */
  const syncWatches = (): void => {
    const wanted = new Set([ownFolder]);
    const target = resolvedTarget(absolute);
    if (target !== undefined) wanted.add(path.dirname(target));
    for (const [folder, watcher] of watchers) {
      if (!wanted.has(folder)) {
        watcher.close();
        watchers.delete(folder);
      }
    }
    for (const folder of wanted) watchFolder(folder);
  };

  syncWatches();
  const poll = setInterval(() => {
    if (closed) return;
    relevant = relevantNames();
    syncWatches();
    onTrigger('poll');
  }, pollIntervalMs);
  poll.unref();

  return {
    close(): void {
      closed = true;
      clearInterval(poll);
      if (debounce !== undefined) clearTimeout(debounce);
      for (const watcher of watchers.values()) watcher.close();
      watchers.clear();
    },
  };
}

/** The real path when `file` is (or goes through) a symlink and differs from it; undefined otherwise. */
function resolvedTarget(file: string): string | undefined {
  try {
    const real = fs.realpathSync(file);
    return real === file ? undefined : real;
  } catch {
    return undefined;
  }
}
