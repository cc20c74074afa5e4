import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every metric the sidecar exports, declared in one place. Labels are bounded: listener,
 * route and cluster names come from the config, codes from a fixed set; never raw paths.
 */

/** Seconds; the low buckets resolve the sub-millisecond overhead of the proxy itself. */
export const LATENCY_BUCKETS_SECONDS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

export class Metrics {
  readonly registry = new Registry();

  readonly requestsTotal = new Counter({
    name: 'sidecar_requests_total',
    help: 'Requests answered, by listener, route, cluster and HTTP status code (499: the client left first).',
    labelNames: ['listener', 'route', 'cluster', 'code'] as const,
    registers: [this.registry],
  });

  readonly requestDuration = new Histogram({
    name: 'sidecar_request_duration_seconds',
    help: 'Time from the request arriving to the response ending, by listener, route and cluster.',
    labelNames: ['listener', 'route', 'cluster'] as const,
    buckets: LATENCY_BUCKETS_SECONDS,
    registers: [this.registry],
  });

  readonly upstreamAttempts = new Counter({
    name: 'sidecar_upstream_attempts_total',
    help: 'Upstream attempts, by cluster and result (status class such as 2xx, or an error code).',
    labelNames: ['cluster', 'result'] as const,
    registers: [this.registry],
  });

  readonly upstreamDuration = new Histogram({
    name: 'sidecar_upstream_duration_seconds',
    help: 'Time from an attempt being sent to the response headers arriving, by cluster.',
    labelNames: ['cluster'] as const,
    buckets: LATENCY_BUCKETS_SECONDS,
    registers: [this.registry],
  });

  readonly requestsInFlight = new Gauge({
    name: 'sidecar_requests_in_flight',
    help: 'Requests being proxied right now, by cluster.',
    labelNames: ['cluster'] as const,
    registers: [this.registry],
  });

  readonly retriesTotal = new Counter({
    name: 'sidecar_retries_total',
    help: 'Retries made, by cluster and the reason of the failed attempt.',
    labelNames: ['cluster', 'reason'] as const,
    registers: [this.registry],
  });

  readonly retriesSkippedTotal = new Counter({
    name: 'sidecar_retries_skipped_total',
    help: 'Retries a policy would have made but did not, by cluster and reason (budget, body_too_large, method, deadline).',
    labelNames: ['cluster', 'reason'] as const,
    registers: [this.registry],
  });

  readonly circuitState = new Gauge({
    name: 'sidecar_circuit_state',
    help: 'Circuit breaker state by cluster: 0 closed, 1 half-open, 2 open.',
    labelNames: ['cluster'] as const,
    registers: [this.registry],
  });

  readonly circuitRejections = new Counter({
    name: 'sidecar_circuit_rejections_total',
    help: 'Requests refused before reaching the app, by cluster and reason (circuit_open, overloaded, no_healthy_upstream).',
    labelNames: ['cluster', 'reason'] as const,
    registers: [this.registry],
  });

  readonly endpointHealthy = new Gauge({
    name: 'sidecar_endpoint_healthy',
    help: 'Whether an endpoint takes traffic: 1, or 0 while its health checks fail or it is ejected.',
    labelNames: ['cluster', 'endpoint'] as const,
    registers: [this.registry],
  });

  readonly healthChecks = new Counter({
    name: 'sidecar_health_checks_total',
    help: 'Active health checks, by cluster, endpoint and result (pass, fail).',
    labelNames: ['cluster', 'endpoint', 'result'] as const,
    registers: [this.registry],
  });

  readonly outlierEjections = new Counter({
    name: 'sidecar_outlier_ejections_total',
    help: 'Endpoints ejected by outlier detection (consecutive failures), by cluster and endpoint.',
    labelNames: ['cluster', 'endpoint'] as const,
    registers: [this.registry],
  });

  readonly configReloads = new Counter({
    name: 'sidecar_config_reloads_total',
    help: 'Configuration loads, by result (success, failure, unchanged).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly configLastReloadSuccess = new Gauge({
    name: 'sidecar_config_last_reload_success',
    help: '1 when the last configuration load succeeded, 0 while the last one was rejected.',
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'sidecar_process_' });
  }
}
