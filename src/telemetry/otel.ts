import type { IncomingMessage } from 'node:http';
import { ROOT_CONTEXT, SamplingDecision, SpanKind, context, propagation, trace, ProxyTracerProvider, type Attributes, type Link, type TextMapPropagator, type Tracer } from '@opentelemetry/api';
import { CompositePropagator, ExportResultCode, W3CBaggagePropagator, W3CTraceContextPropagator, type ExportResult } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { defaultResource, detectResources, envDetector, hostDetector, processDetector, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  StackContextManager,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type IdGenerator,
  type ReadableSpan,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';
import type { Propagator, SidecarConfig } from '../config/types';
import type { Logger } from './logger';
import { PooledIdGenerator } from './ids';
import { OtelRequestTrace, type TraceContextKit } from './request-trace';
import { queueFullMeterProvider } from './span-queue-meter';
import { describeSampler, resolveTracingSettings, type Env, type SamplerSetting, type TracingSettings } from './tracing-settings';
import { disabledTracing, type SpanCounts, type SpanExportObserver, type TraceIdSink, type Tracing, type TracingDescription } from './tracing';

/** The instrumentation scope of the sidecar's spans. */
const TRACER_NAME = 'sidecar';

export interface StartTracingOptions {
  /**
   * Register with the OpenTelemetry API (as @opentelemetry/sdk-node would), as `sidecar run`
   * does before it loads the proxy modules. Off for an embedded Sidecar (and in tests): the
   * tracer provider is then private to it and several can live in one process.
   */
  readonly global?: boolean;
  readonly logger?: Logger;
  readonly env?: Env;
}

/**
 * Starts tracing as the config and the OTEL_* variables say (see tracing-settings.ts). With
 * the exporter `none` nothing of OpenTelemetry is loaded and every request gets a no-op trace.
 */
export function startTracing(config: SidecarConfig, options: StartTracingOptions = {}): Tracing {
  const settings = resolveTracingSettings(config, options.env ?? process.env);
  for (const warning of settings.warnings) options.logger?.warn(`tracing: ${warning}`);
  if (settings.exporter === 'none') return disabledTracing(settings.sources);

  const counts: SpanCounts = { exported: 0, droppedQueueFull: 0, droppedExportFailed: 0 };
  let observer: SpanExportObserver | undefined;
  const exporter = new ObservedExporter(createExporter(settings), (spans, error) => {
    if (error === undefined) {
      counts.exported += spans;
      observer?.exported(spans);
    } else {
      counts.droppedExportFailed += spans;
      observer?.dropped('export_failed', spans, error);
    }
  });
  // Bounded queue: while the collector is slow or down, spans beyond it are dropped (and
  // counted), never buffered without limit and never waited for on the request path.
  const processor = new BatchSpanProcessor({
    exporter,
    scheduledDelayMillis: settings.batch.scheduledDelayMs,
    exportTimeoutMillis: settings.batch.exportTimeoutMs,
    maxQueueSize: settings.batch.maxQueueSize,
    maxExportBatchSize: Math.min(settings.batch.maxExportBatchSize, settings.batch.maxQueueSize),
    selfObsMeterProvider: queueFullMeterProvider((spans) => {
      counts.droppedQueueFull += spans;
      observer?.dropped('queue_full', spans);
    }),
  });
  const { sampler, newTraceSampler } = createSampler(settings.sampler);
  const ids = new PooledIdGenerator();
  const resource = createResource(settings.serviceName);
  const propagators = createPropagators(settings.propagators);

  let tracer: Tracer;
  let stop: () => Promise<void>;
  let flush: () => Promise<void>;
  if (options.global) {
    const started = startGlobalSdk(processor, sampler, ids, resource, propagators.extractor);
    tracer = started.tracer;
    stop = started.stop;
    flush = () => processor.forceFlush();
  } else {
    const provider = new TracerProvider({ sampler, idGenerator: ids, resource, spanProcessors: [processor] });
    tracer = provider.getTracer(TRACER_NAME);
    stop = () => provider.shutdown();
    flush = () => provider.forceFlush();
  }

  const kit: TraceContextKit = {
    tracer,
    ids,
    unsampledParentMeansUnsampled: settings.sampler.name.startsWith('parentbased_'),
    newTraceSampled: newTraceSampler instanceof AlwaysOnSampler ? undefined : decidesNewTrace(newTraceSampler),
    extractor: propagators.extractor,
    extractedHeaders: propagators.extractor.fields(),
    injector: propagators.injector,
    declinedTraceHeaders: propagators.declinedTraceHeaders,
    responseHeader: settings.responseHeader,
    keepQuery: settings.keepQuery,
  };
  options.logger?.info(
    { exporter: settings.exporter, endpoint: settings.endpoint, serviceName: settings.serviceName, sampler: describeSampler(settings.sampler), sources: settings.sources },
    'tracing started',
  );
  return new OtelTracing(kit, propagators.owned, settings, counts, stop, flush, options.logger, (next) => {
    observer = next;
  });
}

class OtelTracing implements Tracing {
  readonly enabled = true;
  private stopped: Promise<void> | undefined;

  constructor(
    private readonly kit: TraceContextKit,
    readonly ownedRequestHeaders: ReadonlySet<string>,
    private readonly settings: TracingSettings,
    private readonly counts: SpanCounts,
    private readonly stopSdk: () => Promise<void>,
    private readonly flushSdk: () => Promise<void>,
    private readonly logger: Logger | undefined,
    readonly setObserver: (observer: SpanExportObserver) => void,
  ) {}

  startRequest(req: IncomingMessage, res: TraceIdSink, listener: string, scheme: 'http' | 'https', requestId: string): OtelRequestTrace {
    return new OtelRequestTrace(this.kit, req, res, listener, scheme, requestId);
  }

  describe(): TracingDescription {
    return {
      exporter: this.settings.exporter,
      endpoint: this.settings.endpoint ?? null,
      serviceName: this.settings.serviceName,
      sampler: describeSampler(this.settings.sampler),
      propagators: this.settings.propagators,
      responseHeader: this.settings.responseHeader,
      spans: { ...this.counts },
      sources: this.settings.sources,
    };
  }

  async forceFlush(): Promise<void> {
    await this.flushSdk().catch((error: unknown) => this.logger?.warn({ err: error }, 'tracing: flushing spans failed'));
  }

  shutdown(timeoutMs: number): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      const started = performance.now();
      const timer = setTimeout(() => {
        this.logger?.warn({ timeoutMs }, 'tracing: spans not flushed in time; giving up on them');
        resolve();
      }, timeoutMs);
      timer.unref();
      this.stopSdk().then(
        () => {
          clearTimeout(timer);
          this.logger?.info({ flushMs: Math.round(performance.now() - started), spans: this.counts }, 'tracing stopped');
          resolve();
        },
        (error: unknown) => {
          clearTimeout(timer);
          this.logger?.warn({ err: error }, 'tracing: the last spans could not be exported');
          resolve();
        },
      );
    });
    return this.stopped;
  }
}

/**
 * The tracer provider, registered with the OpenTelemetry API as @opentelemetry/sdk-node's
 * `start()` registers it for a config of span processors only: tracer provider, propagator and
 * context manager, nothing else. sdk-node itself is not loaded: requiring it loads every
 * exporter of every signal (gRPC included) and the metrics and logs SDKs, ~12 MB of RSS that a
 * sidecar exporting spans over OTLP/HTTP never uses. No instrumentation: the sidecar makes its
 * spans itself. The context manager is the synchronous one: contexts are passed explicitly, so
 * AsyncLocalStorage's cost on every asynchronous operation buys nothing. Metrics and logs stay
 * with Prometheus and pino.
 */
function startGlobalSdk(
  processor: BatchSpanProcessor,
  sampler: Sampler,
  idGenerator: IdGenerator,
  resource: Resource,
  propagator: TextMapPropagator,
): { tracer: Tracer; stop: () => Promise<void> } {
  const registered = trace.getTracerProvider();
  if (registered instanceof ProxyTracerProvider && registered.getDelegate() instanceof TracerProvider) {
    throw new Error('OpenTelemetry tracing is already started in this process');
  }
  const provider = new TracerProvider({ sampler, idGenerator, resource, spanProcessors: [processor] });
  context.setGlobalContextManager(new StackContextManager().enable());
  propagation.setGlobalPropagator(propagator);
  trace.setGlobalTracerProvider(provider);
  return {
    tracer: trace.getTracer(TRACER_NAME),
    stop: async () => {
      try {
        await provider.shutdown();
      } finally {
        trace.disable();
        propagation.disable();
        context.disable();
      }
    },
  };
}

function createExporter(settings: TracingSettings): SpanExporter {
  switch (settings.exporter) {
    case 'otlp-grpc': {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-grpc') as typeof import('@opentelemetry/exporter-trace-otlp-grpc');
      return new OTLPTraceExporter({ url: settings.endpoint });
    }
    case 'console':
      return new ConsoleSpanExporter();
    default: {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { OtlpProtoSpanExporter } = require('./otlp-proto-exporter') as typeof import('./otlp-proto-exporter');
      return new OtlpProtoSpanExporter(settings.endpoint);
    }
  }
}

/** Reports the outcome of every export: spans sent, or spans lost with the error. */
class ObservedExporter implements SpanExporter {
  constructor(
    private readonly inner: SpanExporter,
    private readonly onResult: (spans: number, error: Error | undefined) => void,
  ) {}

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      this.onResult(spans.length, result.code === ExportResultCode.SUCCESS ? undefined : (result.error ?? new Error('span export failed')));
      resultCallback(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/** The tracer's sampler, and the one that decides a span without parent (itself or its parent-based root). */
function createSampler(setting: SamplerSetting): { sampler: Sampler; newTraceSampler: Sampler } {
  const ratio = (): Sampler => new TraceIdRatioBasedSampler(setting.ratio);
  const parentBased = (root: Sampler): { sampler: Sampler; newTraceSampler: Sampler } => ({ sampler: new ParentBasedSampler({ root }), newTraceSampler: root });
  const alone = (sampler: Sampler): { sampler: Sampler; newTraceSampler: Sampler } => ({ sampler, newTraceSampler: sampler });
  switch (setting.name) {
    case 'always_on':
      return alone(new AlwaysOnSampler());
    case 'always_off':
      return alone(new AlwaysOffSampler());
    case 'traceidratio':
      return alone(setting.ratio >= 1 ? new AlwaysOnSampler() : ratio());
    case 'parentbased_always_on':
      return parentBased(new AlwaysOnSampler());
    case 'parentbased_always_off':
      return parentBased(new AlwaysOffSampler());
    case 'parentbased_traceidratio':
      // A sampled parent is followed, an unsampled one too: the caller's decision stands.
      return parentBased(setting.ratio >= 1 ? new AlwaysOnSampler() : ratio());
  }
}

/** Shared by every call: the samplers read them and never change them. */
const NO_ATTRIBUTES: Attributes = Object.freeze({});
const NO_LINKS: Link[] = [];

/**
 * Asks `sampler` about a new trace as the tracer would for a SERVER span without parent. The
 * samplers above decide from the trace id alone, so the span's name does not matter.
 */
function decidesNewTrace(sampler: Sampler): (traceId: string) => boolean {
  return (traceId) => sampler.shouldSample(ROOT_CONTEXT, traceId, '', SpanKind.SERVER, NO_ATTRIBUTES, NO_LINKS).decision !== SamplingDecision.NOT_RECORD;
}

function createResource(serviceName: string): Resource {
  return defaultResource()
    .merge(detectResources({ detectors: [envDetector, processDetector, hostDetector] }))
    .merge(resourceFromAttributes({ 'service.name': serviceName }));
}

/** Every header a B3 propagator reads, single and multi encodings. */
const B3_HEADERS = ['b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'];

/**
 * Reading follows `propagators`; when a request carries both B3 and W3C headers, traceparent
 * wins (it is read last). Writing always includes W3C traceparent (the app's contract), plus
 * baggage and B3 (multi-header X-B3-*, which every B3 library reads) when listed.
 */
export function createPropagators(listed: readonly Propagator[]): Propagators {
  const tracecontext = new W3CTraceContextPropagator();
  const baggage = new W3CBaggagePropagator();
  const b3 = new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER });
  const extractors: TextMapPropagator[] = [];
  if (listed.includes('b3')) extractors.push(b3);
  if (listed.includes('tracecontext')) extractors.push(tracecontext);
  if (listed.includes('baggage')) extractors.push(baggage);
  const injectors: TextMapPropagator[] = [tracecontext];
  const owned = new Set(['traceparent', 'tracestate']);
  if (listed.includes('baggage')) {
    injectors.push(baggage);
    owned.add('baggage');
  }
  if (listed.includes('b3')) {
    injectors.push(b3);
    for (const name of B3_HEADERS) owned.add(name);
  }
  return {
    extractor: extractors.length === 1 ? extractors[0] : new CompositePropagator({ propagators: extractors }),
    injector: injectors.length === 1 ? injectors[0] : new CompositePropagator({ propagators: injectors }),
    owned,
    declinedTraceHeaders: declinedTraceHeaders(listed.includes('b3')),
  };
}

export interface Propagators {
  readonly extractor: TextMapPropagator;
  readonly injector: TextMapPropagator;
  /** The request headers the sidecar writes itself while tracing is on; a client's copies are dropped. */
  readonly owned: ReadonlySet<string>;
  /** See TraceContextKit.declinedTraceHeaders; a test holds it to what `injector` writes. */
  readonly declinedTraceHeaders: (traceId: string, spanId: string) => string[];
}

/**
 * A declined new trace has no tracestate and no baggage: W3C writes traceparent alone, the
 * baggage propagator nothing, and B3 (when listed) its multi headers with the sampled flag
 * off, in that order.
 */
function declinedTraceHeaders(withB3: boolean): (traceId: string, spanId: string) => string[] {
  return (traceId, spanId) => {
    const entries = ['traceparent', `00-${traceId}-${spanId}-00`];
    if (withB3) entries.push('x-b3-traceid', traceId, 'x-b3-spanid', spanId, 'x-b3-sampled', '0');
    return entries;
  };
}
