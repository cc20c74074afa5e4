import type { Metrics } from './metrics/metrics';
import type { Logger } from './logger';
import type { RecentErrors } from './recent-errors';
import type { SpanExportObserver } from './tracing';

/** A collector that stays down fails every export: one log line (and one recorded error) per interval is enough. */
export const SPAN_LOSS_REPORT_INTERVAL_MS = 60_000;

/**
 * Turns span export outcomes into metrics (every one) and into warnings in the process log and
 * the recent errors (the first loss, then at most one per interval with the count since).
 */
export function spanExportReporter(metrics: Metrics, logger: Logger, errors: RecentErrors, intervalMs = SPAN_LOSS_REPORT_INTERVAL_MS): SpanExportObserver {
  // Per reason, so that a full queue does not hide failing exports, nor the reverse.
  const lastReportAt = { queue_full: -Infinity, export_failed: -Infinity };
  const unreported = { queue_full: 0, export_failed: 0 };
  return {
    exported(count) {
      metrics.tracingSpansExported.inc(count);
    },
    dropped(reason, count, error) {
      metrics.tracingSpansDropped.labels(reason).inc(count);
      unreported[reason] += count;
      const now = performance.now();
      if (now - lastReportAt[reason] < intervalMs) return;
      lastReportAt[reason] = now;
      const message =
        reason === 'queue_full'
          ? `${unreported[reason]} spans dropped: the export queue is full (is the collector slow or down?)`
          : `${unreported[reason]} spans lost: export failed: ${error?.message ?? 'unknown error'}`;
      unreported[reason] = 0;
      logger.warn({ reason }, `tracing: ${message}`);
      errors.record({ code: 'SPAN_EXPORT_FAILED', message });
    },
  };
}
