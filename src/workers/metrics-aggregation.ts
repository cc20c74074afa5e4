import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { PRIMARY_OWNED_METRICS, type PrimaryMetrics } from '../telemetry/metrics/metrics';

/**
 * One Prometheus exposition for a worker group. Every worker sends its registry as JSON
 * (`getMetricsAsJSON`, which the request-path families in request-metrics.ts answer in
 * prom-client's own shape, aggregator `sum` included); prom-client's AggregatorRegistry adds
 * them up with the primary's own metrics:
 * - counters and histograms are summed (every bucket, _sum and _count per label set);
 * - gauges that count things (requests in flight, connections, tunnels) are summed;
 * - gauges that are the state of one process (a breaker, an endpoint's health) would mean
 *   nothing summed: their series get a `worker` label instead (PER_WORKER_GAUGES);
 * - the process metrics follow prom-client's own aggregators (memory and CPU summed over the
 *   group, event loop lag averaged);
 * - the config reload families are the primary's (PRIMARY_OWNED_METRICS): it validates and
 *   counts every reload once.
 *
 * Counters never go down, whatever happens to a worker: a worker that does not answer in time
 * is counted with the last figures it gave, and the last figures of a worker that exited stay
 * in the sums (as `retired`). Increments a crashed worker made after its last scrape are lost.
 */

export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];
type MetricJson = MetricsJson[number];

/** State gauges of one process: per worker, never summed. */
export const PER_WORKER_GAUGES: ReadonlySet<string> = new Set(['sidecar_circuit_state', 'sidecar_circuit_breaker_state', 'sidecar_endpoint_healthy']);

/** Retired snapshots are folded into one once there are more than this many. */
const RETIRED_FOLD_THRESHOLD = 4;

export interface WorkerMetricsAnswer {
  /** The slot, 1..workers. */
  readonly worker: number;
  readonly pid: number;
  /** undefined: the worker did not answer (in time). */
  readonly metrics: MetricsJson | undefined;
}

export class GroupMetrics {
  /** The last answer of every live worker process, by pid. */
  private readonly lastAnswers = new Map<number, MetricsJson>();
  /** Cumulative families of worker processes that exited. */
  private retired: MetricsJson[] = [];

  constructor(private readonly primary: PrimaryMetrics) {}

  /** A worker process ended: its counters so far stay in the sums. */
  workerExited(pid: number): void {
    const last = this.lastAnswers.get(pid);
    this.lastAnswers.delete(pid);
    if (last !== undefined) this.retired.push(cumulativeOnly(last));
  }

  /**
   * The exposition for these answers. `slots` is every slot of the group, so that a slot
   * with no live worker shows `sidecar_worker_up{worker} 0`.
   */
  render(slots: readonly number[], answers: readonly WorkerMetricsAnswer[]): Promise<{ text: string; contentType: string }> {
    // One at a time: a render sets the up gauges, then reads them.
    const run = this.rendering.then(() => this.renderNow(slots, answers));
    this.rendering = run.catch(() => undefined);
    return run;
  }

  private rendering: Promise<unknown> = Promise.resolve();

  private async renderNow(slots: readonly number[], answers: readonly WorkerMetricsAnswer[]): Promise<{ text: string; contentType: string }> {
    this.primary.workerUp.reset();
    for (const slot of slots) this.primary.workerUp.labels(String(slot)).set(0);
    const workerSets: MetricsJson[] = [];
    for (const answer of answers) {
      if (answer.metrics !== undefined) {
        const prepared = forGroup(answer.worker, answer.metrics);
        this.lastAnswers.set(answer.pid, prepared);
        this.primary.workerUp.labels(String(answer.worker)).set(1);
        workerSets.push(prepared);
      } else {
        const last = this.lastAnswers.get(answer.pid);
        if (last !== undefined) workerSets.push(cumulativeOnly(last));
      }
    }
    const sets: MetricsJson[] = [await this.primary.registry.getMetricsAsJSON(), ...workerSets];
    sets.push(...(await this.foldedRetired()));
    const registry = AggregatorRegistry.aggregate(sets);
    return { text: await registry.metrics(), contentType: registry.contentType };
  }

  private async foldedRetired(): Promise<MetricsJson[]> {
    if (this.retired.length > RETIRED_FOLD_THRESHOLD) {
      const folding = this.retired;
      const folded = await AggregatorRegistry.aggregate(folding).getMetricsAsJSON();
      // Workers that exited while folding were appended after the folded ones.
      this.retired = [folded, ...this.retired.slice(folding.length)];
    }
    return this.retired;
  }
}

/** A worker's families as the group shows them: the primary's own left out, state gauges labelled with the worker. */
export function forGroup(worker: number, metrics: MetricsJson): MetricsJson {
  const out: MetricJson[] = [];
  for (const metric of metrics) {
    if (PRIMARY_OWNED_METRICS.has(metric.name)) continue;
    if (PER_WORKER_GAUGES.has(metric.name)) {
      out.push({ ...metric, values: metric.values.map((v) => ({ ...v, labels: { ...v.labels, worker: String(worker) } })) });
    } else {
      out.push(metric);
    }
  }
  return out;
}

/** Counters and histograms only: what must stay in the sums when a worker is gone or silent. */
export function cumulativeOnly(metrics: MetricsJson): MetricsJson {
  return metrics.filter((m) => (String(m.type) === 'counter' || String(m.type) === 'histogram') && (m as { aggregator?: string }).aggregator === 'sum');
}
