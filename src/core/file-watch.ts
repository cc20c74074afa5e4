import fs from 'node:fs';
import path from 'node:path';

/**
 * Why the watcher looked at the files: `event` after file-system events about them (debounced),
 * `poll` on the backstop timer. A poll finding nothing new must stay silent; an event finding
 * nothing new is worth counting (someone touched or re-wrote a file with the same bytes).
 */
export type WatchTrigger = 'event' | 'poll';

export interface FileWatcher {
  close(): void;
}

export interface FileWatchTiming {
  /** Editors, `kubectl` and certificate rotation touch files several times; one look after the burst is enough. */
  readonly debounceMs: number;
  /** The backstop for file systems where fs.watch misses events (network mounts, some overlays). */
  readonly pollIntervalMs: number;
}

/**
 * Calls `onTrigger` when any of `files` may have changed. The caller compares contents (a hash),
 * so a spurious trigger costs one read; the configuration file and the TLS files both use this.
 *
 * The FOLDERS are watched, never the files: an atomic rename (vim, `sed -i`, most deploy and
 * certificate tools) and a delete + recreate give the path a new inode that a watch on the old
 * one never sees; a Kubernetes ConfigMap or Secret swaps the `..data` symlink next to the
 * files, so their own paths do not change at all. When a path is a symlink into another
 * folder, that folder is watched as well (re-resolved after every event, since the target
 * changes with each swap). Neither the watches nor the poll timer keep the process alive.
 */
export function watchFileChanges(files: readonly string[], onTrigger: (trigger: WatchTrigger) => void, timing: FileWatchTiming): FileWatcher {
  const absolute = [...new Set(files.map((file) => path.resolve(file)))];
  const ownFolders = new Set(absolute.map((file) => path.dirname(file)));
  const watchers = new Map<string, fs.FSWatcher>();
  let debounce: NodeJS.Timeout | undefined;
  let closed = false;

  // Names whose change can change what the files read: the files themselves, Kubernetes'
  // `..data` link, and (for symlinks) the current targets. A null name means the platform did not say.
  const relevantNames = (): Set<string> => {
    const names = new Set(['..data']);
    for (const file of absolute) {
      names.add(path.basename(file));
      const target = resolvedTarget(file);
      if (target !== undefined) names.add(path.basename(target));
    }
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
    debounce = setTimeout(fire, timing.debounceMs);
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
  /** Watches the files' folders and the folders of their symlink targets; drops stale target folders. */
  const syncWatches = (): void => {
    const wanted = new Set(ownFolders);
    for (const file of absolute) {
      const target = resolvedTarget(file);
      if (target !== undefined) wanted.add(path.dirname(target));
    }
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
  }, timing.pollIntervalMs);
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
