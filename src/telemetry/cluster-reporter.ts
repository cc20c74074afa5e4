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
    for (const endpoint of endpoints) this.metrics.endpointHealthy.labels(cluster, endpoint.name).set(endpoint.healthy ? 1 : 0);
  }

  withdrawn(cluster: string, endpoints: readonly EndpointFacts[]): void {
    this.metrics.circuitState.remove(cluster);
    for (const endpoint of endpoints) this.metrics.endpointHealthy.remove(cluster, endpoint.name);
  }

  breakerChanged(cluster: string, state: BreakerState, previous: BreakerState, resetTimeoutMs: number): void {
    this.metrics.circuitState.labels(cluster).set(BREAKER_STATE_VALUE[state]);
    const fields = { cluster, state, previous };
    if (state === 'open') this.logger.warn({ ...fields, resetTimeoutMs }, 'circuit breaker opened: requests get 503 CIRCUIT_OPEN');
    else this.logger.info(fields, state === 'half-open' ? 'circuit breaker half-open: letting a probe through' : 'circuit breaker closed');
  }

  endpointChanged(cluster: string, endpoint: EndpointFacts, why: string): void {
    this.metrics.endpointHealthy.labels(cluster, endpoint.name).set(endpoint.healthy ? 1 : 0);
    const level = endpoint.healthy ? 'info' : 'warn';
    this.logger[level]({ cluster, endpoint: endpoint.name, healthy: endpoint.healthy }, `endpoint ${why}`);
  }

  healthChecked(cluster: string, endpoint: EndpointFacts, passed: boolean): void {
    this.metrics.healthChecks.labels(cluster, endpoint.name, passed ? 'pass' : 'fail').inc();
  }

  ejected(cluster: string, endpoint: EndpointFacts): void {
    this.metrics.outlierEjections.labels(cluster, endpoint.name).inc();
  }

  strayBytes(cluster: string, endpoint: EndpointFacts, noReuseMs: number): void {
    this.metrics.upstreamStrayBytes.labels(cluster).inc();
    this.logger.warn(
      { cluster, endpoint: endpoint.name, noReuseMs },
      'the app sent response bytes no request asked for: connection closed; its connections carry one request each for a while',
    );
  }

  endpointsReplaced(cluster: string, added: readonly EndpointFacts[], removed: readonly EndpointFacts[]): void {
    for (const endpoint of added) this.metrics.endpointHealthy.labels(cluster, endpoint.name).set(endpoint.healthy ? 1 : 0);
    for (const endpoint of removed) this.metrics.endpointHealthy.remove(cluster, endpoint.name);
  }

  nameResolved(cluster: string, name: string, addresses: readonly string[], previous: readonly string[]): void {
    this.logger.info(
      { cluster, name, addresses, previous },
      previous.length === 0 ? 'endpoint host name resolved' : 'endpoint host name resolves to other addresses: endpoints updated',
    );
  }

  nameResolutionFailed(cluster: string, name: string, error: string, kept: readonly string[]): void {
    this.logger.warn(
      { cluster, name, error, kept },
      kept.length === 0 ? 'endpoint host name could not be resolved: it has no endpoint until it is' : 'endpoint host name could not be resolved: keeping its last good addresses',
    );
  }

  nameResolutionCounted(cluster: string, ok: boolean): void {
    this.metrics.dnsResolutions.labels(cluster, ok ? 'success' : 'failure').inc();
  }

  tlsReloaded(cluster: string, outcome: { readonly ok: true } | { readonly ok: false; readonly error: string }): void {
    if (outcome.ok) this.logger.info({ cluster }, 'upstream TLS files changed: new connections use them');
    else this.logger.warn({ cluster, error: outcome.error }, 'upstream TLS files could not be reloaded: keeping the previous ones');
  }
}
