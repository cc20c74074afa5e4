import type { BreakerState } from '../policy/breaker-state';

/** One endpoint of a cluster as its events name it. */
export interface EndpointFacts {
  /** The endpoint's URL, with the resolved address in brackets for a named endpoint (the `endpoint` label). */
  readonly name: string;
  readonly healthy: boolean;
}

/**
 * What a cluster reports about itself. The upstream layer only calls these; telemetry turns
 * them into metrics and process-log lines (src/telemetry/cluster-reporter.ts), so that nothing
 * in upstream/ knows of prom-client or the logger.
 *
 * All but `tlsReloaded` and the name-resolution events are called only while the runtime is the current one of its name: a
 * retired runtime's late events would otherwise overwrite its successor's gauges.
 */
export interface ClusterEvents {
  /** The runtime became the current one of its name: its state is published as it is now. */
  published(cluster: string, breaker: BreakerState, endpoints: readonly EndpointFacts[]): void;
  /** A reload replaced or removed the runtime: what it published is withdrawn. */
  withdrawn(cluster: string, endpoints: readonly EndpointFacts[]): void;
  breakerChanged(cluster: string, state: BreakerState, previous: BreakerState, resetTimeoutMs: number): void;
  /** An endpoint's health or ejection changed; `why` says how, for the log. */
  endpointChanged(cluster: string, endpoint: EndpointFacts, why: string): void;
  healthChecked(cluster: string, endpoint: EndpointFacts, passed: boolean): void;
  ejected(cluster: string, endpoint: EndpointFacts): void;
  /** The app sent bytes no request asked for; the endpoint's connections carry one request each for `noReuseMs`. */
  strayBytes(cluster: string, endpoint: EndpointFacts, noReuseMs: number): void;
  /** A host name's addresses changed: endpoints were added and removed (published ones only). */
  endpointsReplaced(cluster: string, added: readonly EndpointFacts[], removed: readonly EndpointFacts[]): void;
  /** A host name resolved (any runtime, for the log). */
  nameResolved(cluster: string, name: string, addresses: readonly string[], previous: readonly string[]): void;
  /** A host name could not be resolved; `kept` are its last good addresses. */
  nameResolutionFailed(cluster: string, name: string, error: string, kept: readonly string[]): void;
  /** One resolution attempt, counted. */
  nameResolutionCounted(cluster: string, ok: boolean): void;
  tlsReloaded(cluster: string, outcome: { readonly ok: true } | { readonly ok: false; readonly error: string }): void;
}
