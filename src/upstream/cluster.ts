import { isIP } from 'node:net';
import { buildConnector, Pool } from 'undici';
import type { ClusterConfig, EndpointConfig } from '../config/types';
import { DNS_FIRST_RESOLUTION_WAIT_MS, HTTP2_UPSTREAM_STREAMS_PER_CONNECTION, STRAY_BYTES_NO_REUSE_MS } from '../config/defaults';
import { ClusterBreaker, type BreakerState, type BreakerView } from '../policy/circuit-breaker';
import { ConcurrencyLimit } from '../policy/concurrency-limit';
import { RetryBudget, type RetryBudgetView } from '../policy/retry-budget';
import { EndpointHealth, HealthChecker, type HealthView } from './health-check';
import { EndpointEjection, OutlierDetector, type EjectionView } from './outlier-detection';
import { guardedConnector, type Connector } from './connection-guard';
import { Http2Pool } from './http2-pool';
import { UpstreamTls } from './upstream-tls';
import type { ClusterEvents, EndpointFacts } from './cluster-events';
import { NameResolution, systemResolver, type HostResolver, type NameResolutionView } from './dns';
import { settlesWithin } from '../core/async';

/** An endpoint's client: undici's Pool for HTTP/1.1, the sidecar's own for HTTP/2 (http2-pool.ts). */
export type EndpointPool = Pool | Http2Pool;

/** One address of a named endpoint (clusters[].endpoints[].url with a host name). */
export interface ResolvedAddress {
  readonly address: string;
  /** Called when a connection to the address fails: the name may have moved. */
  readonly connectFailed: () => void;
}
import { HashRing, pickLeastRequest, pickRandom, type LoadBalancerKind } from './load-balancer';

/**
 * One endpoint of a cluster: its connection pool and the state the load balancer reads.
 * `healthy` is derived from active health checks and outlier ejection (see refreshHealthy);
 * the pool is created once and kept for as long as the cluster's settings do not change.
 */
export class EndpointRuntime {
  readonly config: EndpointConfig;
  /** The resolved address connected to, for an endpoint given by host name; undefined for one given by IP address. */
  readonly address: string | undefined;
  /** Unique within the cluster: the URL, with the resolved address in brackets for a named endpoint (`https://payments.example:443[10.0.0.7]`). Metrics and logs label endpoints with it. */
  readonly name: string;
  /** How connections are opened (health checks use it too); undefined: undici's own, to the URL's host. */
  readonly connector: Connector | undefined;
  /** The endpoint's `host[:port]` as a Host header (port omitted when the scheme's default); routes with hostRewrite: auto send it. */
  readonly hostHeader: string;
  /**
   * The pool requests are dispatched to. It is replaced (the old one closing once its requests
   * end) when the endpoint stops or resumes reusing connections after stray bytes.
   */
  pool: EndpointPool;
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
    tls?: UpstreamTls,
    resolved?: ResolvedAddress,
  ) {
    this.config = config;
    this.hostHeader = hostHeaderOf(config.url);
    this.address = resolved?.address;
    this.name = resolved === undefined ? config.url : `${config.url}[${resolved.address}]`;
    this.connector = connectorOf(config, cluster, tls, resolved);
    this.pool = this.createPool(true);
  }

  private createPool(reuseConnections: boolean): EndpointPool {
    const cluster = this.cluster;
    if (cluster.protocol === 'http2') {
      return new Http2Pool(this.config.url, {
        connect: guardedConnector(cluster.connectTimeoutMs, this.onStrayBytes, this.connector),
        maxConnections: cluster.maxConnections,
        // Streams share a connection up to this many at once (fewer when the app's
        // SETTINGS_MAX_CONCURRENT_STREAMS says so); the pool opens another beyond that.
        streamsPerConnection: HTTP2_UPSTREAM_STREAMS_PER_CONNECTION,
        idleTimeoutMs: cluster.idleTimeoutMs,
        connectTimeoutMs: cluster.connectTimeoutMs,
        // A larger response header list fails the attempt (→ 502 UPSTREAM_PROTOCOL_ERROR).
        maxHeaderListSize: cluster.maxResponseHeaderBytes,
      });
    }
    const pool = new Pool(this.config.url, {
      connections: cluster.maxConnections,
      connect: guardedConnector(cluster.connectTimeoutMs, this.onStrayBytes, this.connector),
      // An idle socket is closed before the app's own keep-alive timeout would close it under
      // a request in flight; undici also honours the app's `Keep-Alive: timeout=N` hint.
      keepAliveTimeout: cluster.idleTimeoutMs,
      keepAliveMaxTimeout: cluster.idleTimeoutMs,
      // 0 gives every request its own connection, closed after its response.
      pipelining: reuseConnections ? 1 : 0,
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

  /** Reached over TLS (an https:// endpoint). */
  get tls(): boolean {
    return this.config.url.startsWith('https:');
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
      name: this.name,
      url: this.config.url,
      address: this.address ?? null,
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

/**
 * The connector of an endpoint: TLS for https:// (with SNI and verification on the URL's host
 * name even when connecting to a resolved address); for a resolved address, connections go to
 * that address and a failure to connect asks for the name to be resolved again.
 */
function connectorOf(config: EndpointConfig, cluster: ClusterConfig, tls: UpstreamTls | undefined, resolved: ResolvedAddress | undefined): Connector | undefined {
  const https = config.url.startsWith('https:');
  // HTTP/2 to a plain http:// endpoint is h2c with prior knowledge.
  const h2c = !https && cluster.protocol === 'http2';
  if (resolved === undefined) return https ? tls?.connect : h2c ? h2cConnector(cluster.connectTimeoutMs) : undefined;
  const address = resolved.address;
  let base: Connector;
  if (https && tls !== undefined) base = tls.connectorTo(address);
  else {
    const plain = h2c ? h2cConnector(cluster.connectTimeoutMs) : buildConnector({ timeout: cluster.connectTimeoutMs });
    base = (options, callback) => plain({ ...options, hostname: address }, callback);
  }
  return (options, callback) =>
    base(options, (error, socket) => {
      // (undici's callback type is a union of two signatures; see connection-guard.ts.)
      if (error !== null && error !== undefined) {
        resolved.connectFailed();
        callback(error, null);
        return;
      }
      callback(null, socket as NonNullable<typeof socket>);
    });
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
  /** Unique in the cluster: the URL, with the resolved address in brackets for a named endpoint (the `endpoint` label of metrics, the `url` of /stats). */
  readonly name: string;
  /** As configured (a named endpoint's addresses each have their own view with this URL). */
  readonly url: string;
  /** The resolved address of a named endpoint; null for an endpoint given by IP address. */
  readonly address: string | null;
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
  /** The host names of the endpoints, with their last good addresses and resolution state. */
  readonly dns: readonly NameResolutionView[];
}

/** One configured endpoint: itself (given by IP address), or the endpoints of its name's addresses. */
interface EndpointSlot {
  readonly config: EndpointConfig;
  runtimes: readonly EndpointRuntime[];
  /** undefined for an endpoint given by IP address. */
  readonly resolution: NameResolution | undefined;
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
  /**
   * The endpoints taking part now, in configured order; a named endpoint contributes one per
   * resolved address. Replaced (never mutated) when a name's addresses change.
   */
  endpoints: readonly EndpointRuntime[] = [];
  readonly breaker: ClusterBreaker;
  readonly limit: ConcurrencyLimit;
  readonly retryBudget: RetryBudget;
  /** undefined when the cluster has no `outlierDetection`. */
  readonly outliers: OutlierDetector | undefined;
  private readonly healthChecks: HealthChecker | undefined;
  /** undefined when the cluster has no https:// endpoint. */
  private readonly tls: UpstreamTls | undefined;
  private readonly slots: readonly EndpointSlot[];
  private levels: readonly (readonly EndpointRuntime[])[] = [];
  private cursors: number[] = [];
  /** `loadBalancer: hash`: one ring per priority level (rebuilt with the levels). */
  private rings: ReadonlyArray<HashRing<EndpointRuntime>> = [];
  /** Requests of this cluster in flight; a retired cluster closes when this reaches 0. */
  private inFlightCount = 0;
  private retiring = false;
  private closed = false;
  /** Events are reported only while this runtime is the current one for its name. */
  private reporting = false;

  constructor(
    config: ClusterConfig,
    private readonly events?: ClusterEvents,
    resolver: HostResolver = systemResolver,
  ) {
    this.config = config;
    this.tls = config.tls === undefined ? undefined : new UpstreamTls(config.tls, config.connectTimeoutMs, (outcome) => this.onTlsReload(outcome), config.protocol === 'http2');
    this.slots = config.endpoints.map((endpoint) => this.slotFor(endpoint, resolver));
    this.rebuildEndpoints();
    const cb = config.circuitBreaker;
    this.breaker = new ClusterBreaker(cb, (state, previous) => this.onBreakerState(state, previous));
    this.limit = new ConcurrencyLimit(cb.maxConcurrentRequests, cb.maxPendingRequests);
    this.retryBudget = new RetryBudget(config.retryBudget);
    this.outliers =
      config.outlierDetection === undefined
        ? undefined
        : new OutlierDetector(config.outlierDetection, () => this.endpoints, {
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
    this.events?.published(this.config.name, this.breaker.state, this.endpoints.map(factsOf));
    this.healthChecks?.start();
    this.tls?.watch();
    for (const slot of this.slots) slot.resolution?.start();
  }

  /**
   * Resolves the endpoints' host names once (none: nothing to do) and settles when each has an
   * answer, or after DNS_FIRST_RESOLUTION_WAIT_MS: the sidecar calls it before the cluster takes
   * traffic, so the first requests do not find a named endpoint without addresses.
   */
  async resolveNames(): Promise<void> {
    const pending = this.slots.filter((s) => s.resolution !== undefined && s.resolution.addresses.length === 0).map((s) => s.resolution?.resolve());
    if (pending.length > 0) await settlesWithin(Promise.all(pending), DNS_FIRST_RESOLUTION_WAIT_MS);
  }

  /**
   * The next endpoint to try, or undefined when no endpoint is healthy. `avoid` is the
   * endpoint a retry would rather not use again; it is still chosen when it is the only one.
   */
  pick(avoid?: EndpointRuntime, hashKey?: string): EndpointRuntime | undefined {
    const balancer = this.config.loadBalancer;
    if (balancer !== 'round-robin') return this.pickBy(balancer, avoid, hashKey);
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

  /** The first priority level with a healthy endpoint, by the cluster's loadBalancer. */
  private pickBy(balancer: Exclude<LoadBalancerKind, 'round-robin'>, avoid: EndpointRuntime | undefined, hashKey: string | undefined): EndpointRuntime | undefined {
    for (let level = 0; level < this.levels.length; level++) {
      const endpoints = this.levels[level];
      let picked: EndpointRuntime | undefined;
      if (balancer === 'least-request') {
        const start = this.cursors[level];
        this.cursors[level] = (start + 1) % endpoints.length;
        picked = pickLeastRequest(endpoints, start, avoid);
      } else if (balancer === 'random') {
        picked = pickRandom(endpoints, Math.random, avoid);
      } else {
        picked = this.rings[level].pick(hashKey ?? '', avoid);
      }
      if (picked !== undefined) return picked;
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
    for (const slot of this.slots) slot.resolution?.stop();
    if (this.reporting) {
      this.reporting = false;
      this.events?.withdrawn(this.config.name, this.endpoints.map(factsOf));
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
      dns: this.slots.flatMap((s) => (s.resolution === undefined ? [] : [s.resolution.view()])),
    };
  }

  private slotFor(endpoint: EndpointConfig, resolver: HostResolver): EndpointSlot {
    const host = new URL(endpoint.url).hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) !== 0) return { config: endpoint, runtimes: [new EndpointRuntime(endpoint, this.config, this.strayBytesSeen, this.tls)], resolution: undefined };
    const slot: { config: EndpointConfig; runtimes: readonly EndpointRuntime[]; resolution: NameResolution | undefined } = { config: endpoint, runtimes: [], resolution: undefined };
    slot.resolution = new NameResolution(host, this.config.dnsRefreshMs, resolver, {
      resolved: (ok) => this.onNameResolved(ok),
      changed: (addresses, previous) => this.onAddressesChanged(slot, addresses, previous),
      failed: (error, kept) => this.onResolutionFailed(slot, error, kept),
    });
    return slot;
  }

  private readonly strayBytesSeen = (endpoint: EndpointRuntime): void => this.onStrayBytes(endpoint);

  /** Recomputes the endpoint list and the priority levels from the slots. */
  private rebuildEndpoints(): void {
    this.endpoints = this.slots.flatMap((s) => s.runtimes);
    const priorities = [...new Set(this.endpoints.map((e) => e.config.priority))].sort((a, b) => a - b);
    const previous = this.cursors;
    this.levels = priorities.map((p) => this.endpoints.filter((e) => e.config.priority === p));
    this.cursors = this.levels.map((level, i) => (previous[i] ?? 0) % level.length);
    this.rings = this.config.loadBalancer === 'hash' ? this.levels.map((level) => new HashRing(level, (e) => e.name)) : [];
  }

  /**
   * A name's addresses changed: endpoints of the addresses kept keep their pools and state, new
   * addresses get endpoints, and those of addresses gone stop taking traffic and close once
   * their requests end.
   */
  private onAddressesChanged(slot: EndpointSlot, addresses: readonly string[], previous: readonly string[]): void {
    if (this.closed || this.retiring) return;
    const kept = new Map(slot.runtimes.map((e) => [e.address, e]));
    const resolution = slot.resolution;
    const connectFailed = (): void => resolution?.connectFailed();
    const next = addresses.map((address) => kept.get(address) ?? new EndpointRuntime(slot.config, this.config, this.strayBytesSeen, this.tls, { address, connectFailed }));
    const gone = slot.runtimes.filter((e) => !next.includes(e));
    const added = next.filter((e) => !slot.runtimes.includes(e));
    slot.runtimes = next;
    this.rebuildEndpoints();
    for (const endpoint of added) this.healthChecks?.add(endpoint);
    for (const endpoint of gone) {
      this.healthChecks?.remove(endpoint);
      this.outliers?.forget(endpoint);
      void endpoint.close();
    }
    if (this.reporting) this.events?.endpointsReplaced(this.config.name, added.map(factsOf), gone.map(factsOf));
    this.events?.nameResolved(this.config.name, resolution?.name ?? '', addresses, previous);
  }

  private onResolutionFailed(slot: EndpointSlot, error: string, kept: readonly string[]): void {
    if (this.closed || this.retiring) return;
    this.events?.nameResolutionFailed(this.config.name, slot.resolution?.name ?? '', error, kept);
  }

  private onNameResolved(ok: boolean): void {
    if (this.closed || this.retiring) return;
    this.events?.nameResolutionCounted(this.config.name, ok);
  }

  /** Every timer of the cluster's policies; idempotent. */
  private stopPolicies(): void {
    if (this.closed) return;
    this.closed = true;
    this.reporting = false;
    this.healthChecks?.stop();
    for (const slot of this.slots) slot.resolution?.stop();
    this.tls?.close();
    this.outliers?.stop();
    this.breaker.shutdown();
  }

  private onBreakerState(state: BreakerState, previous: BreakerState): void {
    if (this.reporting) this.events?.breakerChanged(this.config.name, state, previous, this.config.circuitBreaker.resetTimeoutMs);
  }

  private onTlsReload(outcome: { ok: true } | { ok: false; error: string }): void {
    this.events?.tlsReloaded(this.config.name, outcome);
  }

  private onStrayBytes(endpoint: EndpointRuntime): void {
    if (this.reporting) this.events?.strayBytes(this.config.name, factsOf(endpoint), STRAY_BYTES_NO_REUSE_MS);
  }

  private onHealthChecked(endpoint: EndpointRuntime, passed: boolean): void {
    if (this.reporting) this.events?.healthChecked(this.config.name, factsOf(endpoint), passed);
  }

  private onHealthChanged(endpoint: EndpointRuntime, failure: string | undefined): void {
    this.onEndpointChange(endpoint, `health check ${endpoint.health.status}${failure === undefined ? '' : `: ${failure}`}`);
  }

  private onEjected(endpoint: EndpointRuntime, durationMs: number): void {
    if (this.reporting) this.events?.ejected(this.config.name, factsOf(endpoint));
    this.onEndpointChange(endpoint, `ejected for ${durationMs}ms after ${this.config.outlierDetection?.consecutive5xx ?? 0} consecutive failures`);
  }

  private onEndpointChange(endpoint: EndpointRuntime, why: string): void {
    endpoint.refreshHealthy();
    if (this.reporting) this.events?.endpointChanged(this.config.name, factsOf(endpoint), why);
  }
}

function factsOf(endpoint: EndpointRuntime): EndpointFacts {
  return { name: endpoint.name, healthy: endpoint.healthy };
}
