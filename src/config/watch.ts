import { watchFileChanges, type FileWatcher, type WatchTrigger } from '../core/file-watch';

export type { WatchTrigger } from '../core/file-watch';

/** Editors and `kubectl` touch a file several times per save; one look after the burst is enough. */
export const DEFAULT_CONFIG_WATCH_DEBOUNCE_MS = 150;
/** The backstop for file systems where fs.watch misses events (network mounts, some overlays). */
export const DEFAULT_CONFIG_POLL_INTERVAL_MS = 2_000;

export type ConfigFileWatcher = FileWatcher;

export interface WatchConfigFileOptions {
  readonly debounceMs?: number;
  readonly pollIntervalMs?: number;
}

/**
 * Calls `onTrigger` when the configuration file may have changed; the caller compares content
 * hashes (see lifecycle/reloader.ts), so a spurious trigger costs one read. How the file is
 * watched (its folder, symlink targets, `..data` swaps, a poll): core/file-watch.ts.
 */
export function watchConfigFile(
  file: string,
  onTrigger: (trigger: WatchTrigger) => void,
  options: WatchConfigFileOptions = {},
): ConfigFileWatcher {
  return watchFileChanges([file], onTrigger, {
    debounceMs: options.debounceMs ?? DEFAULT_CONFIG_WATCH_DEBOUNCE_MS,
    pollIntervalMs: options.pollIntervalMs ?? DEFAULT_CONFIG_POLL_INTERVAL_MS,
  });
}
