import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { EMBEDDED_SOURCE, formatConfigErrors, loadConfigFile, type ConfigError } from '../config/load';
import type { SidecarConfig } from '../config/types';
import { watchConfigFile, type ConfigFileWatcher, type WatchConfigFileOptions, type WatchTrigger } from '../config/watch';

/** What asked for the reload: a file-system event, the backstop poll, SIGHUP, `POST /reload`, or code. */
export type ReloadTrigger = 'file' | 'poll' | 'signal' | 'admin' | 'api';

/** A config error as the admin API shows it (JSON has no undefined). */
export interface ReloadErrorView {
  readonly path: string;
  readonly line: number | null;
  readonly column: number | null;
  readonly message: string;
}

/** In a worker group (`workers` >= 2): what one worker did with a config the primary validated. */
export interface WorkerApplyView {
  readonly worker: number;
  readonly pid: number | null;
  /** `replaced`: it had applied a config another worker refused, and makes way for one on the running config. */
  readonly result: 'applied' | 'rejected' | 'replaced' | 'no answer' | 'exited';
  readonly message?: string;
}

export type ReloadOutcome =
  | {
      readonly result: 'applied';
      readonly trigger: ReloadTrigger;
      readonly sha256: string;
      readonly previousSha256: string;
      /** What the reload did, e.g. `cluster app: rebuilt`, `listener extra: bound at 127.0.0.1:8081`. */
      readonly changes: readonly string[];
      readonly workers?: readonly WorkerApplyView[];
    }
  | { readonly result: 'unchanged'; readonly trigger: ReloadTrigger; readonly sha256: string }
  | {
      readonly result: 'rejected';
      readonly trigger: ReloadTrigger;
      /** sha256 of the rejected file, or null when it could not be read. */
      readonly sha256: string | null;
      /** Every error, one per line, as `file:line:column path: message`. */
      readonly message: string;
      readonly errors: readonly ReloadErrorView[];
      readonly workers?: readonly WorkerApplyView[];
    };

export type ApplyResult =
  | { readonly ok: true; readonly changes: readonly string[]; readonly workers?: readonly WorkerApplyView[] }
  | { readonly ok: false; readonly error: string; readonly errors: readonly ConfigError[]; readonly workers?: readonly WorkerApplyView[] };

/** The running thing a reload changes; implemented by Sidecar. */
export interface ReloadTarget {
  readonly config: SidecarConfig;
  /** Validated config in; applied whole, or refused whole with the running one kept. Records its own result. */
  applyConfig(config: SidecarConfig): Promise<ApplyResult>;
  /** Counts and logs outcomes that never reach applyConfig (unreadable or invalid file, same hash). */
  recordReload(result: 'success' | 'failure' | 'unchanged', error: string | undefined): void;
}

export interface ReloaderEvents {
  reload: [ReloadOutcome];
}

/**
 * Reads the config file when asked (SIGHUP, `POST /reload`) or when the watcher says it may
 * have changed, and hands a fully validated config to the target. Reloads run one at a time,
 * in order; a content hash equal to the running config's is a no-op. Every outcome is
 * emitted as a `reload` event (tests and operators wait on it instead of sleeping), except a
 * poll that found nothing new.
 */
export class ConfigReloader extends EventEmitter<ReloaderEvents> {
  private queue: Promise<unknown> = Promise.resolve();
  private watcher: ConfigFileWatcher | undefined;
  /** Hash (or read error) of the last file content looked at: a poll seeing it again does nothing. */
  private lastSeen: string;
  private closed = false;

  constructor(
    private readonly target: ReloadTarget,
    /** Absolute path of the file, or EMBEDDED_SOURCE (then every reload is refused). */
    readonly file: string,
  ) {
    super();
    this.lastSeen = target.config.sha256;
  }

  /**
   * Starts watching the file's folder (plus the hash poll). Does nothing for an embedded config.
   * Resolves once the file has been looked at again: a change made between the initial load and
   * this watch is caught at once (as a poll), not at the first poll; a change after it is an event.
   */
  watch(options: WatchConfigFileOptions = {}): Promise<void> {
    if (this.watcher !== undefined || this.closed || this.file === EMBEDDED_SOURCE) return Promise.resolve();
    this.watcher = watchConfigFile(this.file, (trigger) => void this.onWatch(trigger), options);
    return this.onWatch('poll');
  }

  /** Re-reads the file now; the outcome says whether the running config changed and, if not, why. */
  reload(trigger: ReloadTrigger = 'api'): Promise<ReloadOutcome> {
    return this.enqueue(async () => {
      const outcome = await this.run(trigger, await this.readHash());
      this.emit('reload', outcome);
      return outcome;
    });
  }

  /** Stops watching; reloads asked for afterwards are refused (the sidecar is shutting down). */
  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
  }

  private onWatch(trigger: WatchTrigger): Promise<void> {
    return this.enqueue(async () => {
      const read = await this.readHash();
      if (read.key === this.lastSeen) {
        // A poll seeing the same content is the normal case; an event means the file was
        // touched or rewritten with the bytes that are running, which is worth a count. (The
        // same rejected bytes again change nothing: the rejection stands as reported.)
        if (trigger === 'event' && !this.closed && read.hash === this.target.config.sha256) {
          this.target.recordReload('unchanged', undefined);
          this.emit('reload', { result: 'unchanged', trigger: 'file', sha256: read.hash });
        }
        return;
      }
      this.emit('reload', await this.run(trigger === 'event' ? 'file' : 'poll', read));
    });
  }

  private async run(trigger: ReloadTrigger, read: FileRead): Promise<ReloadOutcome> {
    if (this.closed) {
      // Not a failed reload: nothing is counted, the metrics keep describing the running config.
      const message = 'the sidecar is shutting down; the configuration is no longer reloaded';
      return { result: 'rejected', trigger, sha256: read.hash ?? null, message, errors: [{ path: '', line: null, column: null, message }] };
    }
    if (this.file === EMBEDDED_SOURCE) {
      return this.reject(trigger, null, [{ path: '', line: undefined, message: 'this sidecar was started from configuration text, not a file: there is nothing to reload' }]);
    }
    this.lastSeen = read.key;
    if (read.hash === undefined) return this.reject(trigger, null, [{ path: '', line: undefined, message: read.error }]);
    if (read.hash === this.target.config.sha256) return this.unchanged(trigger, read.hash);

    const loaded = await loadConfigFile(this.file);
    if (!loaded.ok) return this.reject(trigger, read.hash, loaded.errors);
    // The file may have changed again between the two reads: judge what was compiled.
    this.lastSeen = loaded.config.sha256;
    if (loaded.config.sha256 === this.target.config.sha256) return this.unchanged(trigger, loaded.config.sha256);

    const previousSha256 = this.target.config.sha256;
    const applied = await this.target.applyConfig(loaded.config);
    const workers = applied.workers === undefined ? {} : { workers: applied.workers };
    if (!applied.ok) return { result: 'rejected', trigger, sha256: loaded.config.sha256, message: applied.error, errors: applied.errors.map(toView), ...workers };
    return { result: 'applied', trigger, sha256: loaded.config.sha256, previousSha256, changes: applied.changes, ...workers };
  }

  private unchanged(trigger: ReloadTrigger, sha256: string): ReloadOutcome {
    // The file holds what is running: whatever was rejected before is no longer pending.
    this.target.recordReload('unchanged', undefined);
    return { result: 'unchanged', trigger, sha256 };
  }

  private reject(trigger: ReloadTrigger, sha256: string | null, errors: readonly ConfigError[]): ReloadOutcome {
    const message = formatConfigErrors(this.file, errors);
    this.target.recordReload('failure', message);
    return { result: 'rejected', trigger, sha256, message, errors: errors.map(toView) };
  }

  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    const next = this.queue.then(task, task);
    // The chain must not hold a rejection: the next task runs whatever happened to this one.
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async readHash(): Promise<FileRead> {
    if (this.file === EMBEDDED_SOURCE) return { key: 'embedded', hash: undefined, error: 'no file' };
    try {
      const hash = createHash('sha256').update(await readFile(this.file)).digest('hex');
      return { key: hash, hash, error: '' };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
      const reason = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`;
      return { key: `unreadable:${code}`, hash: undefined, error: `config file ${this.file} ${reason}; the running configuration stays` };
    }
  }
}

interface FileRead {
  /** The content hash, or `unreadable:CODE`: what a later look is compared with. */
  readonly key: string;
  readonly hash: string | undefined;
  readonly error: string;
}

function toView(error: ConfigError): ReloadErrorView {
  return { path: error.path, line: error.line ?? null, column: error.column ?? null, message: error.message };
}
