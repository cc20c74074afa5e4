import { LATENCY_BUCKETS_SECONDS, type Metrics } from './metrics';

/**
 * Recent traffic for /stats and `sidecar status`: request rate, error rate, p50 and p99 per route,
 * and attempt rate and error rate per cluster, over roughly the last minute. It is computed
 * from the Prometheus counters and histograms the request path already updates, by keeping a
 * few snapshots of them (one every interval): the request path pays nothing for it.
 */

export const DEFAULT_TRAFFIC_WINDOW_MS = 60_000;
export const DEFAULT_TRAFFIC_SAMPLE_INTERVAL_MS = 10_000;

interface RouteCounters {
  readonly listener: string;
  readonly route: string;
  readonly cluster: string;
  requests: number;
  /** Responses with a 5xx status (the sidecar's own 502/503/504 included). */
  errors: number;
  /** Cumulative counts per bucket of LATENCY_BUCKETS_SECONDS, then +Inf. */
  readonly buckets: number[];
}

interface ClusterCounters {
  attempts: number;
  /** Attempts that ended in a 5xx or in an error (connect failure, reset, timeout...). */
  failures: number;
}

export interface TrafficSnapshot {
  /** performance.now() when it was read. */
  readonly takenAt: number;
  readonly routes: ReadonlyMap<string, RouteCounters>;
  readonly clusters: ReadonlyMap<string, ClusterCounters>;
}

export interface RouteTraffic {
  readonly listener: string;
  /** '' for requests no route matched. */
  readonly route: string;
  readonly cluster: string;
  readonly requests: number;
  readonly requestsPerSecond: number;
  /** Share of 5xx responses, 0..1; null without requests. */
  readonly errorRate: number | null;
  /** The median, from the latency histogram (Prometheus histogram_quantile); null without requests. */
  readonly p50Ms: number | null;
  /** From the latency histogram (Prometheus histogram_quantile); null without requests. */
  readonly p99Ms: number | null;
}

export interface ClusterTraffic {
  readonly attempts: number;
  readonly attemptsPerSecond: number;
  readonly errorRate: number | null;
}

export interface TrafficReport {
  readonly windowSeconds: number;
  /** Busiest first. */
  readonly routes: readonly RouteTraffic[];
  readonly clusters: ReadonlyMap<string, ClusterTraffic>;
}

const SUCCESS_RESULTS = new Set(['2xx', '3xx', '4xx']);

/** Reads the counters a snapshot needs from the metrics registry. */
export async function readTraffic(metrics: Metrics): Promise<TrafficSnapshot> {
  const takenAt = performance.now();
  const routes = new Map<string, RouteCounters>();
  const routeOf = (labels: Partial<Record<string, string | number>>): RouteCounters => {
    const listener = String(labels.listener ?? '');
    const route = String(labels.route ?? '');
    const cluster = String(labels.cluster ?? '');
    const key = `${listener}\u0000${route}\u0000${cluster}`;
    let counters = routes.get(key);
    if (counters === undefined) {
      counters = { listener, route, cluster, requests: 0, errors: 0, buckets: new Array<number>(LATENCY_BUCKETS_SECONDS.length + 1).fill(0) };
      routes.set(key, counters);
    }
    return counters;
  };

  for (const { labels, value } of (await metrics.requestsTotal.get()).values) {
    const counters = routeOf(labels);
    counters.requests += value;
    if (Number(labels.code) >= 500) counters.errors += value;
  }
  for (const { labels, value, metricName } of (await metrics.requestDuration.get()).values) {
    if (metricName === undefined || !metricName.endsWith('_bucket')) continue;
    // Bucket samples carry `le` beside the declared labels.
    const index = bucketIndex((labels as Partial<Record<string, string | number>>).le);
    if (index !== undefined) routeOf(labels).buckets[index] += value;
  }

  const clusters = new Map<string, ClusterCounters>();
  for (const { labels, value } of (await metrics.upstreamAttempts.get()).values) {
    const name = String(labels.cluster ?? '');
    const counters = clusters.get(name) ?? { attempts: 0, failures: 0 };
    counters.attempts += value;
    if (!SUCCESS_RESULTS.has(String(labels.result))) counters.failures += value;
    clusters.set(name, counters);
  }
  return { takenAt, routes, clusters };
}

function bucketIndex(le: string | number | undefined): number | undefined {
  if (le === '+Inf') return LATENCY_BUCKETS_SECONDS.length;
  const bound = Number(le);
  const index = LATENCY_BUCKETS_SECONDS.indexOf(bound);
  return index === -1 ? undefined : index;
}

/** The traffic between two snapshots. */
export function compareTraffic(older: TrafficSnapshot, newer: TrafficSnapshot): TrafficReport {
  const seconds = Math.max((newer.takenAt - older.takenAt) / 1000, 0.001);
  const routes: RouteTraffic[] = [];
  for (const [key, now] of newer.routes) {
    const before = older.routes.get(key);
    const requests = Math.max(now.requests - (before?.requests ?? 0), 0);
    if (requests === 0) continue;
    const errors = Math.max(now.errors - (before?.errors ?? 0), 0);
    const buckets = now.buckets.map((count, i) => Math.max(count - (before?.buckets[i] ?? 0), 0));
    const p50 = histogramQuantile(0.5, LATENCY_BUCKETS_SECONDS, buckets);
    const p99 = histogramQuantile(0.99, LATENCY_BUCKETS_SECONDS, buckets);
    routes.push({
      listener: now.listener,
      route: now.route,
      cluster: now.cluster,
      requests,
      requestsPerSecond: requests / seconds,
      errorRate: errors / requests,
      p50Ms: p50 === null ? null : p50 * 1000,
      p99Ms: p99 === null ? null : p99 * 1000,
    });
  }
  routes.sort((a, b) => b.requests - a.requests || a.route.localeCompare(b.route));

  const clusters = new Map<string, ClusterTraffic>();
  for (const [name, now] of newer.clusters) {
    const before = older.clusters.get(name);
    const attempts = Math.max(now.attempts - (before?.attempts ?? 0), 0);
    const failures = Math.max(now.failures - (before?.failures ?? 0), 0);
    clusters.set(name, { attempts, attemptsPerSecond: attempts / seconds, errorRate: attempts === 0 ? null : failures / attempts });
  }
  return { windowSeconds: seconds, routes, clusters };
}

/**
 * Prometheus' histogram_quantile: the bucket holding the q-th observation, with linear
 * interpolation inside it. `cumulative` has one count per upper bound, then the +Inf count.
 * An answer in the +Inf bucket is the highest finite bound. Null when there is no observation.
 */
export function histogramQuantile(q: number, upperBounds: readonly number[], cumulative: readonly number[]): number | null {
  const total = cumulative[cumulative.length - 1] ?? 0;
  if (total <= 0 || !(q > 0 && q <= 1)) return null;
  const rank = q * total;
  let i = 0;
  while (i < cumulative.length - 1 && cumulative[i] < rank) i++;
  if (i >= upperBounds.length) return upperBounds[upperBounds.length - 1];
  const lower = i === 0 ? 0 : upperBounds[i - 1];
  const below = i === 0 ? 0 : cumulative[i - 1];
  const inBucket = cumulative[i] - below;
  if (inBucket <= 0) return upperBounds[i];
  return lower + ((upperBounds[i] - lower) * (rank - below)) / inBucket;
}

export interface TrafficWindowOptions {
  readonly windowMs?: number;
  readonly intervalMs?: number;
  /** The clock of the snapshots' `takenAt`. */
  readonly now?: () => number;
}

/** Keeps snapshots over the window; `report()` compares the oldest one with the present. */
export class TrafficWindow {
  private readonly snapshots: TrafficSnapshot[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly windowMs: number;
  private readonly intervalMs: number;
  private readonly now: () => number;

  constructor(
    private readonly read: () => Promise<TrafficSnapshot>,
    options: TrafficWindowOptions = {},
  ) {
    this.windowMs = options.windowMs ?? DEFAULT_TRAFFIC_WINDOW_MS;
    this.intervalMs = options.intervalMs ?? DEFAULT_TRAFFIC_SAMPLE_INTERVAL_MS;
    this.now = options.now ?? (() => performance.now());
  }

  /** The counters start at zero with the process: that is the first snapshot. Then one per interval. */
  start(): void {
    this.snapshots.push({ takenAt: this.now(), routes: new Map(), clusters: new Map() });
    this.timer = setInterval(() => void this.sample().catch(() => {}), this.intervalMs);
    this.timer.unref();
  }

  /** Takes a snapshot (the interval timer calls this). */
  async sample(): Promise<void> {
    this.keep(await this.read());
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  async report(): Promise<TrafficReport> {
    const now = await this.read();
    const oldest = this.snapshots[0] ?? { takenAt: now.takenAt - this.windowMs, routes: new Map(), clusters: new Map() };
    return compareTraffic(oldest, now);
  }

  private keep(snapshot: TrafficSnapshot): void {
    this.snapshots.push(snapshot);
    // The first snapshot stays the newest one taken at or before the window's start.
    const windowStart = snapshot.takenAt - this.windowMs;
    while (this.snapshots.length > 1 && this.snapshots[1].takenAt <= windowStart) this.snapshots.shift();
  }
}
