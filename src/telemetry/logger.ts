import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * The process log (startup, reloads, breaker changes, errors): JSON lines on stderr so that
 * stdout stays free for the access log. SIDECAR_LOG_LEVEL sets the level (default info).
 */
export function createProcessLogger(level: string = process.env.SIDECAR_LOG_LEVEL ?? 'info'): Logger {
  return pino(
    { level, base: { component: 'sidecar' }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: 2, sync: true }),
  );
}

/** A logger that drops everything, for tests and embedding. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
