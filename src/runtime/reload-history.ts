import type { ConfigError } from '../config/load';
import type { SidecarConfig } from '../config/types';
import type { ConfigReloader, ApplyResult, ReloadOutcome, WorkerApplyView } from '../lifecycle/reloader';
import type { Logger } from '../telemetry/logger';
import type { RecentErrors } from '../telemetry/recent-errors';

/** starting → ready → draining → stopped; only `ready` answers 200 on /ready and accepts reloads. */
export type Phase = 'starting' | 'ready' | 'draining' | 'stopped';

export type ReloadResult = 'success' | 'failure' | 'unchanged';

/** The two reload metrics, as both the single process's and the primary's registries declare them. */
export interface ReloadMetrics {
  readonly configReloads: { labels(result: ReloadResult): { inc(): void } };
  readonly configLastReloadSuccess: { set(value: number): void };
}

/** A reason a config was not applied; `path` '' when it is about the whole config. */
export interface Refusal {
  readonly path: string;
  readonly message: string;
}

/**
 * What the running process (a single sidecar or a worker group's primary) remembers of its
 * reloads: the counters, the last error and outcome that /config and /stats show, the recent
 * errors entry of a rejection and the log line of each result. One place, so that both
 * runtimes say the same things the same way.
 */
export class ReloadHistory {
  lastError: string | undefined;
  lastAt: Date | undefined;
  lastOutcome: (ReloadOutcome & { at: string }) | undefined;

  constructor(
    private readonly metrics: ReloadMetrics,
    private readonly logger: Logger,
    private readonly recentErrors: RecentErrors,
    /** The config running now, read when a result is logged. */
    private readonly running: () => SidecarConfig,
  ) {}

  /** Keeps each outcome the reloader reports (the file watch, SIGHUP, `POST /reload`). */
  follow(reloader: ConfigReloader): void {
    reloader.on('reload', (outcome) => {
      this.lastOutcome = { ...outcome, at: new Date().toISOString() };
    });
  }

  record(result: ReloadResult, error: string | undefined): void {
    this.metrics.configReloads.labels(result).inc();
    this.metrics.configLastReloadSuccess.set(result === 'failure' ? 0 : 1);
    // The file went back to the running bytes after a rejection: the operator fixed it, and
    // the rejection logged at error level is no longer pending. Said at the same level as "config applied".
    const restored = result === 'unchanged' && this.lastError !== undefined;
    this.lastError = result === 'failure' ? error : undefined;
    this.lastAt = new Date();
    if (result === 'failure') this.recentErrors.record({ code: 'CONFIG_REJECTED', message: error });
    const sha256 = this.running().sha256;
    if (result === 'success') this.logger.info({ sha256 }, 'config applied');
    else if (restored) this.logger.info({ sha256 }, 'config restored: the file holds the running configuration again');
    else if (result === 'unchanged') this.logger.debug({ sha256 }, 'config file unchanged');
    else this.logger.error({ error }, 'config rejected; the last good config stays');
  }

  /** Records a refused config and gives the answer the reloader reports. */
  refuse(problems: readonly Refusal[], workers?: readonly WorkerApplyView[]): ApplyResult {
    const errors: ConfigError[] = problems.map((p) => ({ path: p.path, line: undefined, message: p.message }));
    const error = problems.map((p) => (p.path === '' ? p.message : `${p.path}: ${p.message}`)).join('\n');
    this.record('failure', error);
    return { ok: false, error, errors, ...(workers === undefined ? {} : { workers }) };
  }
}

/**
 * Runs config changes one at a time, each against what the previous one left; a failing run
 * does not stop the next. `idle` resolves once the runs queued so far are over (the drain waits for it).
 */
export class SerialRuns {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const run = this.tail.then(work);
    this.tail = run.catch(() => undefined);
    return run;
  }

  get idle(): Promise<unknown> {
    return this.tail;
  }
}
