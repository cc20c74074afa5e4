import type { Logger } from '../telemetry/logger';

/** Error codes that only mean a peer went away; a bug elsewhere must still stop the process. */
const PEER_GONE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END']);

/** Exit code of a process stopped by an uncaught exception (EX_SOFTWARE). */
export const CRASH_EXIT_CODE = 70;

/**
 * A socket error that escaped its request is logged and ignored; any other uncaught
 * exception logs and exits (a worker is then restarted by the primary); an unhandled
 * rejection is logged.
 */
export function installCrashGuards(logger: Logger): void {
  process.on('uncaughtException', (error: NodeJS.ErrnoException) => {
    if (error.code !== undefined && PEER_GONE_CODES.has(error.code)) {
      logger.warn({ err: error }, 'socket error outside a request (ignored)');
      return;
    }
    logger.fatal({ err: error }, 'uncaught exception: exiting');
    process.exit(CRASH_EXIT_CODE);
  });
  process.on('unhandledRejection', (reason) => {
    logger.error({ err: reason }, 'unhandled promise rejection');
  });
}
