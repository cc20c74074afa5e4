import type { Metric, Registry } from 'prom-client';

/**
 * Counter and histogram families for the request path. prom-client hashes a label object on
 * every `inc`/`observe` (microseconds each, several per request); here a child is looked up
 * once per label set and the request path holds it, so counting is a field increment. The
 * families render through prom-client's registry like any other metric, in the same shape
 * (`get()` returns what prom-client's own Counter/Histogram return), so /metrics, worker
 * aggregation and readers of `get()` see no difference.
 */

type LabelSet = Readonly<Record<string, string>>;

interface MetricValueRow {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

interface MetricSnapshot {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  values: MetricValueRow[];
}

abstract class Family<Child> {
  readonly aggregator = 'sum';
  protected readonly children = new Map<string, { labels: LabelSet; child: Child }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}

  /** The child for these label values, in `labelNames` order; created on first use. */
  labels(...values: string[]): Child {
    const key = values.length === 1 ? values[0] : values.join('\u0000');
    const existing = this.children.get(key);
    if (existing !== undefined) return existing.child;
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name} takes ${this.labelNames.length} label values, got ${values.length}`);
    }
    const labels: Record<string, string> = {};
    this.labelNames.forEach((name, i) => (labels[name] = values[i]));
    const child = this.createChild();
    this.children.set(key, { labels, child });
    return child;
  }

  reset(): void {
    this.children.clear();
  }

  /** Registers with a prom-client registry, which reads `name`, `get()` and `reset()`. */
  registerIn(registry: Registry): this {
    registry.registerMetric(this as unknown as Metric<string>);
    return this;
  }

  protected abstract createChild(): Child;
}

export class CounterChild {
  value = 0;

  inc(amount = 1): void {
    this.value += amount;
  }
}

export class FastCounter extends Family<CounterChild> {
  readonly type = 'counter';

  protected createChild(): CounterChild {
    return new CounterChild();
  }

  async get(): Promise<MetricSnapshot> {
    const values: MetricValueRow[] = [];
    for (const { labels, child } of this.children.values()) values.push({ value: child.value, labels: { ...labels } });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

export class HistogramChild {
  /** Per-bucket counts (not cumulative); the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}

export class FastHistogram extends Family<HistogramChild> {
  readonly type = 'histogram';

  constructor(name: string, help: string, labelNames: readonly string[], readonly buckets: readonly number[]) {
    super(name, help, labelNames);
  }

  protected createChild(): HistogramChild {
    return new HistogramChild(this.buckets);
  }

  async get(): Promise<MetricSnapshot> {
    const values: MetricValueRow[] = [];
    for (const { labels, child } of this.children.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += child.counts[i];
        values.push({ value: cumulative, labels: { ...labels, le: this.buckets[i] }, metricName: `${this.name}_bucket` });
      }
      cumulative += child.counts[this.buckets.length];
      values.push({ value: cumulative, labels: { ...labels, le: '+Inf' }, metricName: `${this.name}_bucket` });
      values.push({ value: child.sum, labels: { ...labels }, metricName: `${this.name}_sum` });
      values.push({ value: child.count, labels: { ...labels }, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
