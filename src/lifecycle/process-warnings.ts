import type { Logger } from '../telemetry/logger';

/**
 * Process warnings (deprecations a dependency triggers, such as DEP0060 `util._extend` on Node 22+,
 * experimental features, MaxListeners) become JSON log lines like every other line on
 * stderr. Node's own printer is a 'warning' listener installed at startup (unless
 * --no-warnings): it is removed, so nothing raw reaches the log.
 */
export function routeProcessWarnings(logger: Logger): void {
  process.removeAllListeners('warning');
  process.on('warning', (warning: Error & { code?: string }) => {
    logger.warn({ warning: { name: warning.name, code: warning.code, message: warning.message } }, `process warning: ${warning.name}${warning.code === undefined ? '' : ` ${warning.code}`}`);
  });
}
