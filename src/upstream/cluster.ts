import { Pool } from 'undici';
import type { ClusterConfig, EndpointConfig } from '../config/types';

/**
 * One endpoint of a cluster: its connection pool and the state the load balancer reads.
 * `healthy` is written by health checks and outlier detection; the pool is created once
 * and kept for as long as the cluster's settings do not change.
 */
export class EndpointRuntime {
  readonly config: EndpointConfig;
  readonly pool: Pool;
  healthy = true;
  inFlight = 0;
  requests = 0;
  failures = 0;

  constructor(config: EndpointConfig, cluster: ClusterConfig) {
    this.config = config;
    this.pool = new Pool(config.url, {
      connections: cluster.maxConnections,
      connectTimeout: cluster.connectTimeoutMs,
      // An idle socket is closed before the app's own keep-alive timeout would close it under
      // a request in flight; undici also honours the app's `Keep-Alive: timeout=N` hint.
      keepAliveTimeout: cluster.idleTimeoutMs,
      keepAliveMaxTimeout: cluster.idleTimeoutMs,
      pipelining: 1,
      // Bounds what one response can pin in memory; an oversized block fails the attempt
      // with UND_ERR_HEADERS_OVERFLOW (→ 502 UPSTREAM_PROTOCOL_ERROR).
      maxHeaderSize: cluster.maxResponseHeaderBytes,
      // Per-request timeouts are set on each dispatch from the route.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    // A pool error is also delivered to the request that caused it; this keeps an
    // unhandled 'error' event from ever reaching the process.
    this.pool.on('connectionError', () => {});
  }
}

/**
 * A cluster's live state: endpoints grouped by priority with a round-robin cursor per
 * priority level. Priority 0 takes traffic while any of its endpoints is healthy;
 * priority 1 while none of 0 is, and so on.
 */
export class ClusterRuntime {
  readonly config: ClusterConfig;
  readonly endpoints: readonly EndpointRuntime[];
  private readonly levels: readonly (readonly EndpointRuntime[])[];
  private readonly cursors: number[];
  /** Requests of this cluster in flight; a retired cluster closes when this reaches 0. */
  private inFlightCount = 0;
  private retiring = false;

  constructor(config: ClusterConfig) {
    this.config = config;
    this.endpoints = config.endpoints.map((endpoint) => new EndpointRuntime(endpoint, config));
    const priorities = [...new Set(config.endpoints.map((e) => e.priority))].sort((a, b) => a - b);
    this.levels = priorities.map((p) => this.endpoints.filter((e) => e.config.priority === p));
    this.cursors = this.levels.map(() => 0);
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

  /** A reload replaced this cluster: close it once the requests still using it have ended. */
  retire(): void {
    this.retiring = true;
    if (this.inFlightCount === 0) void this.close();
  }

  async close(): Promise<void> {
    await Promise.all(this.endpoints.map((e) => e.pool.close().catch(() => e.pool.destroy())));
  }

  /** Closes at once, failing requests still in flight. */
  async destroy(): Promise<void> {
    await Promise.all(this.endpoints.map((e) => e.pool.destroy().catch(() => undefined)));
  }
}
