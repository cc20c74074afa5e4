import { buildConnector, Pool } from 'undici';
import type { ClusterConfig, EndpointConfig } from '../config/types';
import { HTTP2_UPSTREAM_STREAMS_PER_CONNECTION, STRAY_BYTES_NO_REUSE_MS } from '../config/defaults';
import type { Metrics } from '../admin/metrics';
import type { Logger } from '../telemetry/logger';
import { BREAKER_STATE_VALUE, ClusterBreaker, type BreakerState, type BreakerView } from '../policy/circuit-breaker';
import { ConcurrencyLimit } from '../policy/concurrency-limit';
import { RetryBudget, type RetryBudgetView } from '../policy/retry-budget';
import { EndpointHealth, HealthChecker, type HealthView } from './health-check';
import { EndpointEjection, OutlierDetector, type EjectionView } from './outlier-detection';
import { guardedConnector, type Connector } from './connection-guard';
import { UpstreamTls } from './upstream-tls';

/**
 * One endpoint of a cluster: its connection pool and the state the load balancer reads.
 * `healthy` is derived from active health checks and outlier ejection (see refreshHealthy);
 * the pool is created once and kept for as long as the cluster's settings do not change.
 */
export class EndpointRuntime {
  readonly config: EndpointConfig;
  /** The endpoint's `host[:port]` as a Host header (port omitted when the scheme's default); routes with hostRewrite: auto send it. */
  readonly hostHeader: string;
  /**
   * The pool requests are dispatched to. It is replaced (the old one closing once its requests
   * end) when the endpoint stops or resumes reusing connections after stray bytes.
   */
  pool: Pool;
  /** Takes traffic: not failed by health checks and not ejected. The only field pick() reads. */
  healthy = true;
  inFlight = 0;
  requests = 0;
  failures = 0;
  responses5xx = 0;
  readonly health = new EndpointHealth();
  readonly ejection = new EndpointEjection();
  /** Armed while connections carry one request each after stray bytes (see onStrayBytes). */
  private noReuseTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    config: EndpointConfig,
    private readonly cluster: ClusterConfig,
    private readonly strayBytesSeen: (endpoint: EndpointRuntime) => void = () => {},
    /** The cluster's TLS origination; used for https:// endpoints only. */
    private readonly tls?: UpstreamTls,
  ) {
    this.config = config;
    this.hostHeader = hostHeaderOf(config.url);
    this.pool = this.createPool(true);
  }

  private createPool(reuseConnections: boolean): Pool {
    const cluster = this.cluster;
    const http2 = cluster.protocol === 'http2';
    const pool = new Pool(this.config.url, {
      connections: cluster.maxConnections,
      connect: guardedConnector(cluster.connectTimeoutMs, this.onStrayBytes, this.tlsConnector ?? (http2 ? h2cConnector(cluster.connectTimeoutMs) : undefined)),
      // An idle socket is closed before the app's own keep-alive timeout would close it under
      // a request in flight; undici also honours the app's `Keep-Alive: timeout=N` hint.
      keepAliveTimeout: cluster.idleTimeoutMs,
      keepAliveMaxTimeout: cluster.idleTimeoutMs,
      // HTTP/1.1: 0 gives every request its own connection, closed after its response.
      // HTTP/2: streams share a connection up to this many at once (fewer when the app's
      // SETTINGS_MAX_CONCURRENT_STREAMS says so); the pool opens another beyond that.
      pipelining: http2 ? HTTP2_UPSTREAM_STREAMS_PER_CONNECTION : reuseConnections ? 1 : 0,
      ...(http2 ? { allowH2: true, maxConcurrentStreams: HTTP2_UPSTREAM_STREAMS_PER_CONNECTION } : {}),
      // Bounds what one response can pin in memory; an oversized block fails the attempt
      // with UND_ERR_HEADERS_OVERFLOW (→ 502 UPSTREAM_PROTOCOL_ERROR).
      maxHeaderSize: cluster.maxResponseHeaderBytes,
      // Per-request timeouts are set on each dispatch from the route.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    // A pool error is also delivered to the request that caused it; this keeps an
    // unhandled 'error' event from ever reaching the process.
    pool.on('connectionError', () => {});
    return pool;
  }

  /**
   * A connection received response bytes while no request was waiting for one (undici has
   * destroyed it). HTTP/1 cannot tell which request bytes belong to: such bytes held back by
   * the app's TCP stack (Nagle) until the next request's ACK arrive right after that request
   * and read as its response. So the invariant kept from here on: while the timer runs, no
   * connection to this endpoint carries a second request, and stray bytes have no request to
   * reach. The idle connections of the old pool close now, its busy ones after their response.
   */
  private readonly onStrayBytes = (): void => {
    if (this.closed) return;
    this.strayBytesSeen(this);
    if (this.noReuseTimer !== undefined) {
      this.noReuseTimer.refresh();
      return;
    }
    this.replacePool(false);
    this.noReuseTimer = setTimeout(() => {
      this.noReuseTimer = undefined;
      if (!this.closed) this.replacePool(true);
    }, STRAY_BYTES_NO_REUSE_MS);
    this.noReuseTimer.unref();
  };

  /** The TLS connector of an https:// endpoint (health checks use it too); undefined for http://. */
  get tlsConnector(): Connector | undefined {
    return this.config.url.startsWith('https:') ? this.tls?.connect : undefined;
  }

  /** Whether connections to this endpoint are reused (false for a while after stray bytes). */
  get reusesConnections(): boolean {
    return this.noReuseTimer === undefined;
  }

  private replacePool(reuseConnections: boolean): void {
    const old = this.pool;
    this.pool = this.createPool(reuseConnections);
    old.close().catch(() => old.destroy());
  }

  async close(): Promise<void> {
    this.stop();
    await this.pool.close().catch(() => this.pool.destroy());
  }

  async destroy(): Promise<void> {
    this.stop();
    await this.pool.destroy().catch(() => undefined);
  }

  private stop(): void {
    this.closed = true;
    if (this.noReuseTimer !== undefined) {
      clearTimeout(this.noReuseTimer);
      this.noReuseTimer = undefined;
    }
  }

  /** Recomputes `healthy` after a health check or ejection change; true when it changed. */
  refreshHealthy(): boolean {
    const healthy = this.health.status !== 'unhealthy' && !this.ejection.ejected;
    if (healthy === this.healthy) return false;
    this.healthy = healthy;
    return true;
  }

  view(active: boolean): EndpointView {
    return {
      url: this.config.url,
      priority: this.config.priority,
      healthy: this.healthy,
      active,
      inFlight: this.inFlight,
      requests: this.requests,
      failures: this.failures,
      responses5xx: this.responses5xx,
      healthCheck: this.health.view(),
      outlier: this.ejection.view(),
    };
  }
}

/** undici's plain connector, marking each socket as HTTP/2 with prior knowledge (h2c): no Upgrade, no ALPN. */
function h2cConnector(connectTimeoutMs: number): Connector {
  // `useH2c` is read by undici's connector but missing from its typings.
  const options: buildConnector.BuildOptions & { useH2c: boolean } = { timeout: connectTimeoutMs, useH2c: true };
  return buildConnector(options);
}

function hostHeaderOf(origin: string): string {
  const url = new URL(origin);
  // The WHATWG parser already drops :80 for http and :443 for https.
  return url.host;
}

export interface EndpointView {
  readonly url: string;
  readonly priority: number;
  readonly healthy: boolean;
  /** In the priority level that takes traffic now. */
  readonly active: boolean;
  readonly inFlight: number;
  /** Attempts sent since the cluster was created. */
  readonly requests: number;
  /** Attempts that got no response (connect failure, reset, timeout). */
  readonly failures: number;
  readonly responses5xx: number;
  readonly healthCheck: HealthView;
  readonly outlier: EjectionView;
}

export interface ClusterView {
  readonly name: string;
  readonly inFlight: number;
  readonly pending: number;
  readonly maxConcurrentRequests: number;
  readonly maxPendingRequests: number;
  readonly circuitBreaker: BreakerView;
  readonly retryBudget: RetryBudgetView;
  readonly healthCheck: { readonly path: string; readonly intervalMs: number } | null;
  readonly outlierDetection: { readonly consecutive5xx: number; readonly baseEjectionTimeMs: number } | null;
  readonly endpoints: readonly EndpointView[];
}

/** Where a cluster reports its state changes. */
export interface ClusterObserver {
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/**
 * A cluster's live state: endpoints grouped by priority with a round-robin cursor per
 * priority level, and its resilience state (breaker, concurrency limit, retry budget, health
 * checks, outlier detection). Priority 0 takes traffic while any of its endpoints is healthy;
 * priority 1 while none of 0 is, and so on. When no endpoint at all is healthy there is no
 * panic mode: requests get 503 NO_HEALTHY_UPSTREAM rather than being sent to endpoints known
 * to be failing.
 *
 * A reload keeps the ClusterRuntime (and so all of this state) when the cluster's settings
 * are unchanged; otherwise it is retired and closed once its last request ends, which stops
 * every timer it owns.
 */
export class ClusterRuntime {
  readonly config: ClusterConfig;
  readonly endpoints: readonly EndpointRuntime[];
  readonly breaker: ClusterBreaker;
  readonly limit: ConcurrencyLimit;
  readonly retryBudget: RetryBudget;
  /** undefined when the cluster has no `outlierDetection`. */
  readonly outliers: OutlierDetector | undefined;
  private readonly healthChecks: HealthChecker | undefined;
  /** undefined when the cluster has no https:// endpoint. */
  private readonly tls: UpstreamTls | undefined;
  private readonly levels: readonly (readonly EndpointRuntime[])[];
  private readonly cursors: number[];
  /** Requests of this cluster in flight; a retired cluster closes when this reaches 0. */
  private inFlightCount = 0;
  private retiring = false;
  private closed = false;
  /** Reports go to metrics only while this runtime is the current one for its name. */
  private reporting = false;

  constructor(
    config: ClusterConfig,
    private readonly observer?: ClusterObserver,
  ) {
    this.config = config;
    this.tls = config.tls === undefined ? undefined : new UpstreamTls(config.tls, config.connectTimeoutMs, (outcome) => this.onTlsReload(outcome), config.protocol === 'http2');
    this.endpoints = config.endpoints.map((endpoint) => new EndpointRuntime(endpoint, config, (e) => this.onStrayBytes(e), this.tls));
    const priorities = [...new Set(config.endpoints.map((e) => e.priority))].sort((a, b) => a - b);
    this.levels = priorities.map((p) => this.endpoints.filter((e) => e.config.priority === p));
    this.cursors = this.levels.map(() => 0);
    const cb = config.circuitBreaker;
    this.breaker = new ClusterBreaker(cb, (state, previous) => this.onBreakerState(state, previous));
    this.limit = new ConcurrencyLimit(cb.maxConcurrentRequests, cb.maxPendingRequests);
    this.retryBudget = new RetryBudget(config.retryBudget);
    this.outliers =
      config.outlierDetection === undefined
        ? undefined
        : new OutlierDetector(config.outlierDetection, this.endpoints, {
            ejected: (endpoint, durationMs) => this.onEjected(endpoint, durationMs),
            returned: (endpoint) => this.onEndpointChange(endpoint, 'returned after ejection'),
          });
    this.healthChecks =
      config.healthCheck === undefined
        ? undefined
        : new HealthChecker(config.healthCheck, this.endpoints, {
            checked: (endpoint, passed) => this.onHealthChecked(endpoint, passed),
            changed: (endpoint, failure) => this.onHealthChanged(endpoint, failure),
          });
  }

  /** Makes this runtime the current one of its name: publishes its state and starts health checks. */
  start(): void {
    this.reporting = true;
    const metrics = this.observer?.metrics;
    if (metrics !== undefined) {
      metrics.circuitState.labels(this.config.name).set(BREAKER_STATE_VALUE[this.breaker.state]);
      for (const endpoint of this.endpoints) metrics.endpointHealthy.labels(this.config.name, endpoint.config.url).set(endpoint.healthy ? 1 : 0);
    }
    this.healthChecks?.start();
    this.tls?.watch();
  }

  /**
   * The next endpoint to try, or undefined when no endpoint is healthy. `avoid` is the
   * endpoint a retry would rather not use again; it is still chosen when it is the only one.
   */
  pick(avoid?: EndpointRuntime): EndpointRuntime | undefined {
    for (let level = 0; level < this.levels.length; level++) {
      const endpoints = this.levels[level];
      const n = endpoints.length;
      let fallback: EndpointRuntime | undefined;
      for (let i = 0; i < n; i++) {
        const index = (this.cursors[level] + i) % n;
        const candidate = endpoints[index];
        if (!candidate.healthy) continue;
        if (candidate === avoid) {
          fallback = candidate;
          continue;
        }
        this.cursors[level] = (index + 1) % n;
        return candidate;
      }
      if (fallback !== undefined) return fallback;
    }
    return undefined;
  }

  /** Whether pick(endpoint) could choose another endpoint than this one now. */
  hasAlternativeTo(endpoint: EndpointRuntime): boolean {
    for (const level of this.levels) {
      if (level.some((e) => e.healthy && e !== endpoint)) return true;
      if (level.some((e) => e.healthy)) return false;
    }
    return false;
  }

  /** One attempt's result, for outlier detection: `failed` for 5xx, connect failure, reset, timeout. */
  recordAttempt(endpoint: EndpointRuntime, failed: boolean): void {
    if (this.outliers !== undefined) this.outliers.record(endpoint, failed);
  }

  get inFlight(): number {
    return this.inFlightCount;
  }

  acquire(): void {
    this.inFlightCount++;
  }

  release(): void {
    this.inFlightCount--;
    if (this.retiring && this.inFlightCount === 0) void this.close();
  }

  /**
   * A reload replaced or removed this cluster: its metrics are withdrawn now (the runtime that
   * replaces it publishes its own), and it closes once the requests still using it have ended.
   */
  retire(): void {
    this.retiring = true;
    if (this.reporting) {
      this.reporting = false;
      const metrics = this.observer?.metrics;
      if (metrics !== undefined) {
        metrics.circuitState.remove(this.config.name);
        for (const endpoint of this.endpoints) metrics.endpointHealthy.remove(this.config.name, endpoint.config.url);
      }
    }
    if (this.inFlightCount === 0) void this.close();
  }

  async close(): Promise<void> {
    this.stopPolicies();
    await Promise.all(this.endpoints.map((e) => e.close()));
  }

  /** Closes at once, failing requests still in flight. */
  async destroy(): Promise<void> {
    this.stopPolicies();
    await Promise.all(this.endpoints.map((e) => e.destroy()));
  }

  /** The state GET /clusters shows. */
  view(): ClusterView {
    const activeLevel = this.levels.find((level) => level.some((e) => e.healthy));
    const cb = this.config.circuitBreaker;
    return {
      name: this.config.name,
      inFlight: this.limit.active,
      pending: this.limit.pending,
      maxConcurrentRequests: cb.maxConcurrentRequests,
      maxPendingRequests: cb.maxPendingRequests,
      circuitBreaker: this.breaker.view(),
      retryBudget: this.retryBudget.view(),
      healthCheck: this.config.healthCheck === undefined ? null : { path: this.config.healthCheck.path, intervalMs: this.config.healthCheck.intervalMs },
      outlierDetection: this.config.outlierDetection ?? null,
      endpoints: this.endpoints.map((e) => e.view(activeLevel?.includes(e) === true)),
    };
  }

  /** Every timer of the cluster's policies; idempotent. */
  private stopPolicies(): void {
    if (this.closed) return;
    this.closed = true;
    this.reporting = false;
    this.healthChecks?.stop();
    this.tls?.close();
    this.outliers?.stop();
    this.breaker.shutdown();
  }

  private onBreakerState(state: BreakerState, previous: BreakerState): void {
    if (!this.reporting) return;
    const { metrics, logger } = this.observer ?? {};
    metrics?.circuitState.labels(this.config.name).set(BREAKER_STATE_VALUE[state]);
    const fields = { cluster: this.config.name, state, previous };
    if (state === 'open') logger?.warn({ ...fields, resetTimeoutMs: this.config.circuitBreaker.resetTimeoutMs }, 'circuit breaker opened: requests get 503 CIRCUIT_OPEN');
    else logger?.info(fields, state === 'half-open' ? 'circuit breaker half-open: letting a probe through' : 'circuit breaker closed');
  }

  private onTlsReload(outcome: { ok: true } | { ok: false; error: string }): void {
    const logger = this.observer?.logger;
    if (outcome.ok) logger?.info({ cluster: this.config.name }, 'upstream TLS files changed: new connections use them');
    else logger?.warn({ cluster: this.config.name, error: outcome.error }, 'upstream TLS files could not be reloaded: keeping the previous ones');
  }

  private onStrayBytes(endpoint: EndpointRuntime): void {
    if (!this.reporting) return;
    const { metrics, logger } = this.observer ?? {};
    metrics?.upstreamStrayBytes.labels(this.config.name).inc();
    logger?.warn(
      { cluster: this.config.name, endpoint: endpoint.config.url, noReuseMs: STRAY_BYTES_NO_REUSE_MS },
      'the app sent response bytes no request asked for: connection closed; its connections carry one request each for a while',
    );
  }

  private onHealthChecked(endpoint: EndpointRuntime, passed: boolean): void {
    if (this.reporting) this.observer?.metrics.healthChecks.labels(this.config.name, endpoint.config.url, passed ? 'pass' : 'fail').inc();
  }

  private onHealthChanged(endpoint: EndpointRuntime, failure: string | undefined): void {
    this.onEndpointChange(endpoint, `health check ${endpoint.health.status}${failure === undefined ? '' : `: ${failure}`}`);
  }

  private onEjected(endpoint: EndpointRuntime, durationMs: number): void {
    if (this.reporting) this.observer?.metrics.outlierEjections.labels(this.config.name, endpoint.config.url).inc();
    this.onEndpointChange(endpoint, `ejected for ${durationMs}ms after ${this.config.outlierDetection?.consecutive5xx ?? 0} consecutive failures`);
  }

  private onEndpointChange(endpoint: EndpointRuntime, why: string): void {
    endpoint.refreshHealthy();
    if (!this.reporting) return;
    const { metrics, logger } = this.observer ?? {};
    metrics?.endpointHealthy.labels(this.config.name, endpoint.config.url).set(endpoint.healthy ? 1 : 0);
    const level = endpoint.healthy ? 'info' : 'warn';
    logger?.[level]({ cluster: this.config.name, endpoint: endpoint.config.url, healthy: endpoint.healthy }, `endpoint ${why}`);
  }
}
