import { loadConfigFile, formatConfigErrors } from './config/load';
import type { Sidecar } from './sidecar';
import { createProcessLogger, type Logger } from './telemetry/logger';
import { startTracing } from './telemetry/otel';
import type { Tracing } from './telemetry/tracing';

/** Error codes that only mean a peer went away; a bug elsewhere must still stop the process. */
const PEER_GONE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END']);

/**
 * `sidecar run`: load the file (exit 1 with every error and its line when it is invalid),
 * bind everything, then live: the file is watched and reloaded on change (also on SIGHUP
 * and `POST /reload`); SIGTERM/SIGINT drain (see Sidecar#drain) and exit 0; a second
 * SIGTERM/SIGINT exits at once.
 */
export async function runSidecar(configPath: string): Promise<Sidecar> {
  const logger = createProcessLogger();
  installCrashGuards(logger);
  // Until the sidecar is up there is nothing to drain: a stop signal ends the start at once.
  const earlyStop = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'stop signal during start: exiting');
    process.exit(0);
  };
  process.on('SIGTERM', earlyStop);
  process.on('SIGINT', earlyStop);
  const loaded = await loadConfigFile(configPath);
  if (!loaded.ok) {
    process.stderr.write(formatConfigErrors(configPath, loaded.errors) + '\n');
    process.exit(1);
  }
  let sidecar: Sidecar;
  let tracing: Tracing;
  try {
    // OpenTelemetry starts before the modules that load node:http and undici (listeners,
    // upstream pools): loading the config needs only yaml and zod.
    tracing = startTracing(loaded.config, { global: true, logger });
  } catch (error) {
    process.stderr.write(`sidecar: tracing: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const proxy = require('./sidecar') as typeof import('./sidecar');
    sidecar = await proxy.Sidecar.start(loaded.config, { logger, tracing, watchConfig: true });
  } catch (error) {
    process.stderr.write(`sidecar: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
  process.off('SIGTERM', earlyStop);
  process.off('SIGINT', earlyStop);
  installLifecycleSignals(sidecar, logger);
  return sidecar;
}

function installLifecycleSignals(sidecar: Sidecar, logger: Logger): void {
  let stopping = false;
  const onStop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now, without waiting for requests in flight');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'stop signal: draining');
    sidecar.drain().then(
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
    void sidecar.reloader.reload('signal').then((outcome) => {
      const { result, sha256 } = outcome;
      logger.info({ result, sha256, ...(outcome.result === 'applied' ? { changes: outcome.changes } : {}) }, 'reload after SIGHUP');
    });
  });
}

function installCrashGuards(logger: Logger): void {
  process.on('uncaughtException', (error: NodeJS.ErrnoException) => {
    if (error.code !== undefined && PEER_GONE_CODES.has(error.code)) {
      logger.warn({ err: error }, 'socket error outside a request (ignored)');
      return;
    }
    logger.fatal({ err: error }, 'uncaught exception: exiting');
    process.exit(70);
  });
  process.on('unhandledRejection', (reason) => {
    logger.error({ err: reason }, 'unhandled promise rejection');
  });
}
