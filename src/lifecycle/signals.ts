import type { ConfigReloader } from './reloader';
import type { Logger } from '../telemetry/logger';

/** What the process's signals act on: the single sidecar, or the primary of a worker group. */
export interface SignalTarget {
  readonly reloader: ConfigReloader;
  /** The drain sequence; the process exits 0 when it resolves, 1 when it fails. */
  drain(): Promise<unknown>;
  /** Run before the immediate exit of a second stop signal (e.g. kill the workers). */
  exitNow?(): void;
}

/**
 * SIGTERM and SIGINT start the drain, and a second one exits at once; SIGHUP reloads the
 * configuration and logs what the reload did.
 */
export function installLifecycleSignals(target: SignalTarget, logger: Logger): void {
  let stopping = false;
  const onStop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now, without waiting for requests in flight');
      target.exitNow?.();
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'stop signal: draining');
    target.drain().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'drain failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', () => {
    void target.reloader.reload('signal').then((outcome) => {
      const { result, sha256 } = outcome;
      logger.info({ result, sha256, ...(outcome.result === 'applied' ? { changes: outcome.changes } : {}) }, 'reload after SIGHUP');
    });
  });
}
