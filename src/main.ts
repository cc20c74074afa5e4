import { loadConfigFile, formatConfigErrors } from './config/load';
import type { SidecarConfig } from './config/types';
import { routeProcessWarnings } from './lifecycle/process-warnings';
import { installCrashGuards } from './lifecycle/crash-guards';
import { installLifecycleSignals } from './lifecycle/signals';
import type { Sidecar } from './sidecar';
import { createProcessLogger, type Logger } from './telemetry/logger';
import type { Tracing } from './telemetry/tracing';

/**
 * `sidecar run`: load the file (exit 1 with every error and its line when it is invalid),
 * then run it in this process (`workers: 1`, the default), or with `workers: 2` or more as a
 * primary process that forks the workers (see workers/primary.ts).
 */
export async function run(configPath: string): Promise<void> {
  const { config, logger } = await loadOrExit(configPath);
  if (config.workers > 1) {
    // The primary loads neither the proxy modules nor OpenTelemetry: the workers do.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { runWorkerGroup } = require('./workers/primary') as typeof import('./workers/primary');
    await runWorkerGroup(config, logger, removeEarlyStop);
    return;
  }
  await startInProcess(config, logger);
}

/**
 * The sidecar in this process, whatever `workers` says: bind everything, then live: the file
 * is watched and reloaded on change (also on SIGHUP and `POST /reload`); SIGTERM/SIGINT drain
 * (see Sidecar#drain) and exit 0; a second SIGTERM/SIGINT exits at once.
 */
export async function runSidecar(configPath: string): Promise<Sidecar> {
  const { config, logger } = await loadOrExit(configPath);
  return startInProcess(config, logger);
}

// Until the sidecar is up there is nothing to drain: a stop signal ends the start at once.
let earlyStopLogger: Logger | undefined;
function earlyStop(signal: NodeJS.Signals): void {
  earlyStopLogger?.info({ signal }, 'stop signal during start: exiting');
  process.exit(0);
}

function removeEarlyStop(): void {
  process.off('SIGTERM', earlyStop);
  process.off('SIGINT', earlyStop);
}

async function loadOrExit(configPath: string): Promise<{ config: SidecarConfig; logger: Logger }> {
  const logger = createProcessLogger();
  installCrashGuards(logger);
  routeProcessWarnings(logger);
  earlyStopLogger = logger;
  process.on('SIGTERM', earlyStop);
  process.on('SIGINT', earlyStop);
  const loaded = await loadConfigFile(configPath);
  if (!loaded.ok) {
    process.stderr.write(formatConfigErrors(configPath, loaded.errors) + '\n');
    process.exit(1);
  }
  return { config: loaded.config, logger };
}

async function startInProcess(config: SidecarConfig, logger: Logger): Promise<Sidecar> {
  let sidecar: Sidecar;
  let tracing: Tracing;
  try {
    // OpenTelemetry starts before the modules that load node:http and undici (listeners,
    // upstream pools): loading the config needs only yaml and zod.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { startTracing } = require('./telemetry/otel') as typeof import('./telemetry/otel');
    tracing = startTracing(config, { global: true, logger });
  } catch (error) {
    process.stderr.write(`sidecar: tracing: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const proxy = require('./sidecar') as typeof import('./sidecar');
    sidecar = await proxy.Sidecar.start(config, { logger, tracing, watchConfig: true });
  } catch (error) {
    process.stderr.write(`sidecar: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
  removeEarlyStop();
  installLifecycleSignals(sidecar, logger);
  return sidecar;
}
