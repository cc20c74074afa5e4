import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ClusterRoute } from '../../config/types';
import { FastCounter, FastHistogram, type CounterChild, type HistogramChild } from './request-metrics';
import type { ClusterRuntime } from '../../upstream/cluster';
import { BREAKER_STATE_VALUE, type BreakerState } from '../../policy/breaker-state';

/**
 * Every metric the sidecar exports, declared in one place. Labels are bounded: listener,
 * route and cluster names come from the config, codes from a fixed set; never raw paths.
 */

/** Seconds; the low buckets resolve the sub-millisecond overhead of the proxy itself. */
export const LATENCY_BUCKETS_SECONDS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/** Seconds; a CONNECT tunnel lives from one request to a long-lived stream. */
export const TUNNEL_DURATION_BUCKETS_SECONDS = [0.01, 0.1, 1, 10, 60, 300, 1800, 3600];

/** The clusters the collect-time gauges read (those of the current config). */
export type ClusterSource = () => Iterable<ClusterRuntime>;

// Declared once, registered by Metrics (one process) or PrimaryMetrics (a worker group).
const CONFIG_RELOADS = {
  name: 'sidecar_config_reloads_total',
  help: 'Configuration reloads after the start (file change, SIGHUP, POST /reload), by result (success, failure, unchanged). The initial load is not one.',
  labelNames: ['result'] as const,
};
/** The results of CONFIG_RELOADS, each exported from the start at 0. */
export const CONFIG_RELOAD_RESULTS = ['success', 'failure', 'unchanged'] as const;
const CONFIG_LAST_RELOAD_SUCCESS = {
  name: 'sidecar_config_last_reload_success',
  help: '1 when the running configuration is the last one read (the initial load, or a reload that succeeded), 0 while the last reload was rejected.',
};

/**
 * prom-client's process and Node.js metrics, in the sidecar_ namespace once:
 * sidecar_process_cpu_seconds_total, sidecar_process_resident_memory_bytes,
 * sidecar_nodejs_eventloop_lag_seconds... Its three `nodejs_active_*_total` families are
 * removed: they are gauges, and a gauge named `_total` reads as a counter (promtool flags
 * it); each equals the sum over `type` of its `sidecar_nodejs_active_*{type}` family.
 */
function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, prefix: PROCESS_METRICS_PREFIX });
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(PROCESS_METRICS_PREFIX + name);
  }
}
const PROCESS_METRICS_PREFIX = 'sidecar_';

const BREAKER_STATES = Object.keys(BREAKER_STATE_VALUE) as BreakerState[];

const ADMIN_CONNECTIONS_CLOSED = {
  name: 'sidecar_admin_connections_closed_total',
  help:
    'Connections the admin listener closed to keep room for probes, by reason: evicted (the oldest idle one, to let a new one in) ' +
    'or refused (a new one, when every connection was busy).',
  labelNames: ['reason'] as const,
};

export class Metrics {
  readonly registry = new Registry();
  private clusterSource: ClusterSource = () => [];

  // Updated on every request: the fast families (see request-metrics.ts).
  readonly requestsTotal = new FastCounter(
    'sidecar_requests_total',
    'Requests answered, by listener, route, cluster and HTTP status code (499: the client left first).',
    ['listener', 'route', 'cluster', 'code'],
  ).registerIn(this.registry);

  readonly requestDuration = new FastHistogram(
    'sidecar_request_duration_seconds',
    'Time from the request arriving to the response ending, by listener, route and cluster.',
    ['listener', 'route', 'cluster'],
    LATENCY_BUCKETS_SECONDS,
  ).registerIn(this.registry);

  readonly upstreamAttempts = new FastCounter(
    'sidecar_upstream_attempts_total',
    'Upstream attempts, by cluster and result (status class such as 2xx, or an error code).',
    ['cluster', 'result'],
  ).registerIn(this.registry);

  readonly upstreamDuration = new FastHistogram(
    'sidecar_upstream_duration_seconds',
    'Time from an attempt being sent to the response headers arriving, by cluster.',
    ['cluster'],
    LATENCY_BUCKETS_SECONDS,
  ).registerIn(this.registry);

  // The gauges below are read from the clusters when /metrics is scraped: nothing is counted
  // on the request path for them.
  readonly requestsInFlight: Gauge<'cluster'> = new Gauge({
    name: 'sidecar_requests_in_flight',
    help: 'Requests being proxied right now, by cluster.',
    labelNames: ['cluster'] as const,
    registers: [this.registry],
    collect: () => {
      this.requestsInFlight.reset();
      for (const cluster of this.clusterSource()) this.requestsInFlight.labels(cluster.config.name).set(cluster.inFlight);
    },
  });

  readonly upstreamConnections: Gauge<'cluster' | 'state'> = new Gauge({
    name: 'sidecar_upstream_connections',
    help: 'Open connections to the endpoints of a cluster, by state: busy (carrying a request) or idle (kept alive for the next).',
    labelNames: ['cluster', 'state'] as const,
    registers: [this.registry],
    collect: () => {
      this.upstreamConnections.reset();
      for (const cluster of this.clusterSource()) {
        let connected = 0;
        let idle = 0;
        for (const endpoint of cluster.endpoints) {
          const stats = endpoint.pool.stats;
          connected += stats.connected;
          idle += stats.free;
        }
        this.upstreamConnections.labels(cluster.config.name, 'busy').set(connected - idle);
        this.upstreamConnections.labels(cluster.config.name, 'idle').set(idle);
      }
    },
  });

  readonly upstreamPendingRequests: Gauge<'cluster'> = new Gauge({
    name: 'sidecar_upstream_pending_requests',
    help: 'Requests waiting to be sent to an endpoint of a cluster (for a connection, or behind maxConnections).',
    labelNames: ['cluster'] as const,
    registers: [this.registry],
    collect: () => {
      this.upstreamPendingRequests.reset();
      for (const cluster of this.clusterSource()) {
        let pending = 0;
        for (const endpoint of cluster.endpoints) pending += endpoint.pool.stats.pending;
        this.upstreamPendingRequests.labels(cluster.config.name).set(pending);
      }
    },
  });

  readonly retriesTotal = new Counter({
    name: 'sidecar_retries_total',
    help: 'Retries made, by cluster and the reason of the failed attempt.',
    labelNames: ['cluster', 'reason'] as const,
    registers: [this.registry],
  });

  readonly grpcResponsesTotal = new Counter({
    name: 'sidecar_grpc_responses_total',
    help: 'Answers to gRPC calls, by the gRPC status the client got (grpc_code: 0 OK ... 16 UNAUTHENTICATED; the app\'s, or the sidecar\'s own for its errors).',
    labelNames: ['listener', 'route', 'cluster', 'grpc_code'] as const,
    registers: [this.registry],
  });

  readonly retriesSkippedTotal = new Counter({
    name: 'sidecar_retries_skipped_total',
    help: 'Retries a policy would have made but did not, by cluster and reason (budget, body_too_large, method, deadline).',
    labelNames: ['cluster', 'reason'] as const,
    registers: [this.registry],
  });

  readonly requestHeadersDropped = new Counter({
    name: 'sidecar_request_headers_dropped_total',
    help: 'Request headers not forwarded to the app, by listener and reason (underscore: the name holds "_", headersWithUnderscores: drop).',
    labelNames: ['listener', 'reason'] as const,
    registers: [this.registry],
  });

  readonly websocketUpgrades = new Counter({
    name: 'sidecar_websocket_upgrades_total',
    help: 'WebSocket upgrade requests, by listener, route, cluster and the status answered (101: a tunnel opened).',
    labelNames: ['listener', 'route', 'cluster', 'code'] as const,
    registers: [this.registry],
  });

  readonly websocketTunnelsActive = new Gauge({
    name: 'sidecar_websocket_tunnels_active',
    help: 'WebSocket tunnels open right now, by listener and cluster.',
    labelNames: ['listener', 'cluster'] as const,
    registers: [this.registry],
  });

  readonly websocketTunnelBytes = new Counter({
    name: 'sidecar_websocket_tunnel_bytes_total',
    help: 'Bytes relayed through closed WebSocket tunnels, by cluster and direction (upstream: client to app; downstream: app to client).',
    labelNames: ['cluster', 'direction'] as const,
    registers: [this.registry],
  });

  readonly egressTunnels = new Counter({
    name: 'sidecar_egress_tunnels_total',
    help:
      'CONNECT requests of forward-proxy listeners, by listener, destination (the allow entry that matched; "" when none did) and result: ' +
      'opened, denied (403 EGRESS_DENIED), connect_failure (503), bad_request (400).',
    labelNames: ['listener', 'destination', 'result'] as const,
    registers: [this.registry],
  });

  readonly egressTunnelBytes = new Counter({
    name: 'sidecar_egress_tunnel_bytes_total',
    help: 'Bytes relayed through closed CONNECT tunnels, by listener, destination (the allow entry) and direction (upstream: app to destination; downstream: destination to app).',
    labelNames: ['listener', 'destination', 'direction'] as const,
    registers: [this.registry],
  });

  readonly egressTunnelDuration = new Histogram({
    name: 'sidecar_egress_tunnel_duration_seconds',
    help: 'Lifetime of closed CONNECT tunnels, from the 200 to the close of both sides, by listener and destination (the allow entry).',
    labelNames: ['listener', 'destination'] as const,
    buckets: TUNNEL_DURATION_BUCKETS_SECONDS,
    registers: [this.registry],
  });

  readonly listenerConnectionsDropped = new Counter({
    name: 'sidecar_listener_connections_dropped_total',
    help:
      'Client connections a listener closed before they carried a request, by listener and reason: per_peer_limit (the address already held ' +
      'maxConnectionsPerPeer), max_connections (the listener was full), silent_near_capacity (no byte sent while the listener was near maxConnections).',
    labelNames: ['listener', 'reason'] as const,
    registers: [this.registry],
  });

  readonly adminConnectionsClosed = new Counter({ ...ADMIN_CONNECTIONS_CLOSED, registers: [this.registry] });

  readonly circuitState = new Gauge({
    name: 'sidecar_circuit_state',
    help: 'Circuit breaker state by cluster: 0 closed, 1 half-open, 2 open.',
    labelNames: ['cluster'] as const,
    registers: [this.registry],
  });

  /** The same state as circuitState, one series per state; read from it when scraped. */
  readonly circuitBreakerState: Gauge<'cluster' | 'state'> = new Gauge({
    name: 'sidecar_circuit_breaker_state',
    help: 'Circuit breaker state by cluster, one series per state (closed, half-open, open): 1 for the current state, 0 for the others.',
    labelNames: ['cluster', 'state'] as const,
    registers: [this.registry],
    collect: async () => {
      this.circuitBreakerState.reset();
      for (const { labels, value } of (await this.circuitState.get()).values) {
        for (const state of BREAKER_STATES) this.circuitBreakerState.labels(String(labels.cluster), state).set(BREAKER_STATE_VALUE[state] === value ? 1 : 0);
      }
    },
  });

  readonly circuitRejections = new Counter({
    name: 'sidecar_circuit_rejections_total',
    help: 'Requests refused before reaching the app, by cluster and reason (circuit_open, overloaded, no_healthy_upstream).',
    labelNames: ['cluster', 'reason'] as const,
    registers: [this.registry],
  });

  readonly rateLimited = new Counter({
    name: 'sidecar_rate_limited_total',
    help: 'Requests refused with 429 RATE_LIMITED by a route\'s rateLimit, by listener and route.',
    labelNames: ['listener', 'route'] as const,
    registers: [this.registry],
  });

  readonly rateLimitEvictions = new Counter({
    name: 'sidecar_rate_limit_evictions_total',
    help: 'Rate-limit buckets forgotten (least recently used first) to keep a route within its rateLimit.maxKeys, by listener and route.',
    labelNames: ['listener', 'route'] as const,
    registers: [this.registry],
  });

  readonly mirrorRequests = new Counter({
    name: 'sidecar_mirror_requests_total',
    help: 'Shadow copies of requests (routes[].mirror), by route, shadow cluster and outcome: ok, 5xx, failed (no response), body_too_large, body_incomplete, overflow (too many in flight), no_healthy_upstream.',
    labelNames: ['route', 'cluster', 'outcome'] as const,
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

  readonly upstreamStrayBytes = new Counter({
    name: 'sidecar_upstream_stray_bytes_total',
    help: 'Connections to the app closed because they received response bytes no request asked for (the endpoint then stops reusing connections for a while), by cluster.',
    labelNames: ['cluster'] as const,
    registers: [this.registry],
  });

  readonly dnsResolutions = new Counter({
    name: 'sidecar_dns_resolutions_total',
    help: 'Resolutions of the host names of endpoints, by cluster and result (success, failure: the last good addresses stay in use).',
    labelNames: ['cluster', 'result'] as const,
    registers: [this.registry],
  });

  readonly outlierEjections = new Counter({
    name: 'sidecar_outlier_ejections_total',
    help: 'Endpoints ejected by outlier detection (consecutive failures), by cluster and endpoint.',
    labelNames: ['cluster', 'endpoint'] as const,
    registers: [this.registry],
  });

  readonly http2PrematureResetCloses = new Counter({
    name: 'sidecar_http2_premature_reset_closes_total',
    help: 'HTTP/2 connections closed with GOAWAY ENHANCE_YOUR_CALM because the client reset more streams than it completed (rapid reset), by listener.',
    labelNames: ['listener'] as const,
    registers: [this.registry],
  });

  readonly configReloads = new Counter({ ...CONFIG_RELOADS, registers: [this.registry] });

  readonly configLastReloadSuccess = new Gauge({ ...CONFIG_LAST_RELOAD_SUCCESS, registers: [this.registry] });

  private readonly routeInstrumentCache = new Map<string, RouteInstruments>();

  /**
   * forRoute for a proxied request, looked up by the route object itself: a compiled route
   * belongs to one listener and one cluster, so the request path builds no key string.
   */
  forClusterRoute(listener: string, route: ClusterRoute): RouteInstruments {
    let instruments = this.clusterRouteInstruments.get(route);
    if (instruments === undefined) {
      instruments = this.forRoute(listener, route.name, route.cluster);
      this.clusterRouteInstruments.set(route, instruments);
    }
    return instruments;
  }

  private readonly clusterRouteInstruments = new WeakMap<ClusterRoute, RouteInstruments>();

  /**
   * The counters one route's requests update, looked up once per (listener, route, cluster)
   * and then held: a reload that keeps the names keeps counting into the same series.
   */
  forRoute(listener: string, route: string, cluster: string): RouteInstruments {
    const key = `${listener}\u0000${route}\u0000${cluster}`;
    let instruments = this.routeInstrumentCache.get(key);
    if (instruments === undefined) {
      instruments = new RouteInstruments(this, listener, route, cluster);
      this.routeInstrumentCache.set(key, instruments);
    }
    return instruments;
  }

  readonly tracingSpansExported = new Counter({
    name: 'sidecar_tracing_spans_exported_total',
    help: 'Spans the collector accepted.',
    registers: [this.registry],
  });

  readonly tracingSpansDropped = new Counter({
    name: 'sidecar_tracing_spans_dropped_total',
    help: 'Spans lost, by reason: queue_full (the export queue was full: the collector is slow or down) or export_failed.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly accessLogLinesDropped = new Counter({
    name: 'sidecar_access_log_lines_dropped_total',
    help: 'Access log lines dropped because the destination (a file, stdout) did not keep up and the buffer was full.',
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics !== false) collectProcessMetrics(this.registry);
    // Present from the start at 0, so that alerts on them have a series to watch.
    for (const result of CONFIG_RELOAD_RESULTS) this.configReloads.labels(result).inc(0);
    this.tracingSpansDropped.labels('queue_full').inc(0);
    this.tracingSpansDropped.labels('export_failed').inc(0);
  }

  /** Where the in-flight and connection gauges read their clusters from. */
  observeClusters(source: ClusterSource): void {
    this.clusterSource = source;
  }
}

/** The per-route series of sidecar_requests_total and sidecar_request_duration_seconds. */
export class RouteInstruments {
  private readonly duration: HistogramChild;
  private readonly byStatus = new Map<number, CounterChild>();
  /** sidecar_upstream_attempts_total of the route's cluster, by status class or error code. */
  private readonly attemptsByOutcome = new Map<string, CounterChild>();
  private upstreamSeconds: HistogramChild | undefined;

  constructor(
    private readonly metrics: Metrics,
    readonly listener: string,
    readonly route: string,
    readonly cluster: string,
  ) {
    this.duration = metrics.requestDuration.labels(listener, route, cluster);
  }

  answered(status: number, durationSeconds: number): void {
    let counter = this.byStatus.get(status);
    if (counter === undefined) {
      counter = this.metrics.requestsTotal.labels(this.listener, this.route, this.cluster, String(status));
      this.byStatus.set(status, counter);
    }
    counter.inc();
    this.duration.observe(durationSeconds);
  }

  /** An attempt of this route ended with `outcome`: a status class (`2xx`) or an error code. */
  attempted(outcome: string): void {
    let counter = this.attemptsByOutcome.get(outcome);
    if (counter === undefined) {
      counter = this.metrics.upstreamAttempts.labels(this.cluster, outcome);
      this.attemptsByOutcome.set(outcome, counter);
    }
    counter.inc();
  }

  /** Time to the response headers of the attempt that answered. */
  upstreamResponded(seconds: number): void {
    (this.upstreamSeconds ??= this.metrics.upstreamDuration.labels(this.cluster)).observe(seconds);
  }
}

/**
 * The primary process of a worker group (`workers` >= 2): the metrics only it knows. Its
 * /metrics adds the workers' families to these (see workers/metrics-aggregation.ts).
 */
export class PrimaryMetrics {
  readonly registry = new Registry();

  readonly http2PrematureResetCloses = new Counter({
    name: 'sidecar_http2_premature_reset_closes_total',
    help: 'HTTP/2 connections closed with GOAWAY ENHANCE_YOUR_CALM because the client reset more streams than it completed (rapid reset), by listener.',
    labelNames: ['listener'] as const,
    registers: [this.registry],
  });

  readonly configReloads = new Counter({ ...CONFIG_RELOADS, registers: [this.registry] });

  readonly configLastReloadSuccess = new Gauge({ ...CONFIG_LAST_RELOAD_SUCCESS, registers: [this.registry] });

  readonly adminConnectionsClosed = new Counter({ ...ADMIN_CONNECTIONS_CLOSED, registers: [this.registry] });

  readonly workerRestarts = new Counter({
    name: 'sidecar_worker_restarts_total',
    help: 'Worker processes restarted after they exited unasked (a crash), by worker slot (1..workers).',
    labelNames: ['worker'] as const,
    registers: [this.registry],
  });

  readonly workerUp = new Gauge({
    name: 'sidecar_worker_up',
    help: "1 when the worker answered this scrape; 0 when it is down (restarting) or did not answer in time (its counters are then the last ones it gave, so that sums never go down).",
    labelNames: ['worker'] as const,
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean; workers?: number } = {}) {
    if (options.processMetrics !== false) collectProcessMetrics(this.registry);
    // Present from the start at 0, so that alerts on them have a series to watch.
    for (const result of CONFIG_RELOAD_RESULTS) this.configReloads.labels(result).inc(0);
    for (let worker = 1; worker <= (options.workers ?? 0); worker++) this.workerRestarts.labels(String(worker)).inc(0);
  }
}

/** Families the primary of a worker group owns: the workers' own copies are left out of the sums. */
export const PRIMARY_OWNED_METRICS: ReadonlySet<string> = new Set([CONFIG_RELOADS.name, CONFIG_LAST_RELOAD_SUCCESS.name, ADMIN_CONNECTIONS_CLOSED.name]);
