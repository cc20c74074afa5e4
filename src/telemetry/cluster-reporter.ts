import { BREAKER_STATE_VALUE, type BreakerState } from '../policy/breaker-state';
import type { ClusterEvents, EndpointFacts } from '../upstream/cluster-events';
import type { Logger } from './logger';
import type { Metrics } from './metrics/metrics';

/** A cluster's events as gauges, counters and process-log lines. */
export class ClusterReporter implements ClusterEvents {
  constructor(
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {}

  published(cluster: string, breaker: BreakerState, endpoints: readonly EndpointFacts[]): void {
    this.metrics.circuitState.labels(cluster).set(BREAKER_STATE_VALUE[breaker]);
    for (const endpoint of endpoints) this.metrics.endpointHealthy.labels(cluster, endpoint.url).set(endpoint.healthy ? 1 : 0);
  }

  withdrawn(cluster: string, endpoints: readonly EndpointFacts[]): void {
    this.metrics.circuitState.remove(cluster);
    for (const endpoint of endpoints) this.metrics.endpointHealthy.remove(cluster, endpoint.url);
  }

  breakerChanged(cluster: string, state: BreakerState, previous: BreakerState, resetTimeoutMs: number): void {
    this.metrics.circuitState.labels(cluster).set(BREAKER_STATE_VALUE[state]);
    const fields = { cluster, state, previous };
    if (state === 'open') this.logger.warn({ ...fields, resetTimeoutMs }, 'circuit breaker opened: requests get 503 CIRCUIT_OPEN');
    else this.logger.info(fields, state === 'half-open' ? 'circuit breaker half-open: letting a probe through' : 'circuit breaker closed');
  }

  endpointChanged(cluster: string, endpoint: EndpointFacts, why: string): void {
    this.metrics.endpointHealthy.labels(cluster, endpoint.url).set(endpoint.healthy ? 1 : 0);
    const level = endpoint.healthy ? 'info' : 'warn';
    this.logger[level]({ cluster, endpoint: endpoint.url, healthy: endpoint.healthy }, `endpoint ${why}`);
  }

  healthChecked(cluster: string, endpoint: EndpointFacts, passed: boolean): void {
    this.metrics.healthChecks.labels(cluster, endpoint.url, passed ? 'pass' : 'fail').inc();
  }

  ejected(cluster: string, endpoint: EndpointFacts): void {
    this.metrics.outlierEjections.labels(cluster, endpoint.url).inc();
  }

  strayBytes(cluster: string, endpoint: EndpointFacts, noReuseMs: number): void {
    this.metrics.upstreamStrayBytes.labels(cluster).inc();
    this.logger.warn(
      { cluster, endpoint: endpoint.url, noReuseMs },
      'the app sent response bytes no request asked for: connection closed; its connections carry one request each for a while',
    );
  }

  tlsReloaded(cluster: string, outcome: { readonly ok: true } | { readonly ok: false; readonly error: string }): void {
    if (outcome.ok) this.logger.info({ cluster }, 'upstream TLS files changed: new connections use them');
    else this.logger.warn({ cluster, error: outcome.error }, 'upstream TLS files could not be reloaded: keeping the previous ones');
  }
}
