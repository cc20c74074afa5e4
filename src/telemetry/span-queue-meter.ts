import {
  createNoopMeter,
  type BatchObservableCallback,
  type Counter,
  type Gauge,
  type Histogram,
  type Meter,
  type MeterProvider,
  type MetricAttributes,
  type MetricOptions,
  type Observable,
  type ObservableCounter,
  type ObservableGauge,
  type ObservableUpDownCounter,
  type UpDownCounter,
} from '@opentelemetry/api';

/**
 * The BatchSpanProcessor tells about the spans it drops because its queue is full only through
 * its self-observability meter (`selfObsMeterProvider`, an experimental option of the pinned
 * @opentelemetry/sdk-trace 2.12.0). This provider turns that one signal into a callback and
 * makes every other instrument a no-op. Export outcomes are observed on the exporter instead.
 */

/** The processor's counter, and the `error.type` it carries for spans dropped on a full queue. */
const PROCESSED_SPANS_METRIC = 'otel.sdk.processor.span.processed';
const QUEUE_FULL = 'queue_full';

export function queueFullMeterProvider(onQueueFull: (count: number) => void): MeterProvider {
  const meter = new QueueFullMeter(onQueueFull);
  return { getMeter: () => meter };
}

class QueueFullMeter implements Meter {
  private readonly noop = createNoopMeter();

  constructor(private readonly onQueueFull: (count: number) => void) {}

  createCounter<A extends MetricAttributes = MetricAttributes>(name: string, options?: MetricOptions): Counter<A> {
    if (name !== PROCESSED_SPANS_METRIC) return this.noop.createCounter<A>(name, options);
    return {
      add: (value, attributes) => {
        if (attributes?.['error.type'] === QUEUE_FULL) this.onQueueFull(value);
      },
    };
  }

  createGauge<A extends MetricAttributes = MetricAttributes>(name: string, options?: MetricOptions): Gauge<A> {
    return this.noop.createGauge<A>(name, options);
  }

  createHistogram<A extends MetricAttributes = MetricAttributes>(name: string, options?: MetricOptions): Histogram<A> {
    return this.noop.createHistogram<A>(name, options);
  }

  createUpDownCounter<A extends MetricAttributes = MetricAttributes>(name: string, options?: MetricOptions): UpDownCounter<A> {
    return this.noop.createUpDownCounter<A>(name, options);
  }

  createObservableGauge<A extends MetricAttributes = MetricAttributes>(name: string, options?: MetricOptions): ObservableGauge<A> {
    return this.noop.createObservableGauge<A>(name, options);
  }

  createObservableCounter<A extends MetricAttributes = MetricAttributes>(name: string, options?: MetricOptions): ObservableCounter<A> {
    return this.noop.createObservableCounter<A>(name, options);
  }

  createObservableUpDownCounter<A extends MetricAttributes = MetricAttributes>(name: string, options?: MetricOptions): ObservableUpDownCounter<A> {
    return this.noop.createObservableUpDownCounter<A>(name, options);
  }

  addBatchObservableCallback<A extends MetricAttributes = MetricAttributes>(callback: BatchObservableCallback<A>, observables: Observable<A>[]): void {
    this.noop.addBatchObservableCallback(callback, observables);
  }

  removeBatchObservableCallback<A extends MetricAttributes = MetricAttributes>(callback: BatchObservableCallback<A>, observables: Observable<A>[]): void {
    this.noop.removeBatchObservableCallback(callback, observables);
  }
}
