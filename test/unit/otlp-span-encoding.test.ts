import t from 'tap';
import { SpanKind, SpanStatusCode, TraceFlags, type Attributes, type HrTime, type Link, type SpanContext } from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan, type TimedEvent } from '@opentelemetry/sdk-trace';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { ATTRIBUTE_VALUES_CACHED_PER_KEY, encodeTraceExportRequest } from '../../src/telemetry/otlp-span-encoding';

// The sidecar's encoder must put on the wire exactly what OpenTelemetry's own serializer
// does, for every span it can be given: the same bytes, batch after batch (the second
// encoding of a batch is served from the attribute caches).

/** A seeded generator, so that a failure names a case that can be run again. */
function generator(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}

const STRINGS = ['', 'GET', '/api/v1/items', 'sidecar', 'é', 'ünïcødé ✓', '日本語', '\ud800 lone surrogate', 'x'.repeat(200), 'y'.repeat(20_000), 'emoji 🙂'];
const NUMBERS = [0, 1, 127, 128, 200, 503, 16_384, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 62, -1, -128, -(2 ** 40), 0.5, -2.75, 1e300, Number.NaN, Infinity, -Infinity, 2 ** 63, -0];

function pick<T>(random: () => number, values: readonly T[]): T {
  return values[Math.floor(random() * values.length)];
}

function hex(random: () => number, bytes: number): string {
  let out = '';
  for (let i = 0; i < bytes; i++) out += Math.floor(random() * 256).toString(16).padStart(2, '0');
  return out;
}

function attributeValue(random: () => number, depth = 0): unknown {
  const kind = Math.floor(random() * (depth > 1 ? 5 : 8));
  switch (kind) {
    case 0:
    case 1:
      return pick(random, STRINGS);
    case 2:
      return pick(random, NUMBERS);
    case 3:
      return random() < 0.5;
    case 4:
      // A per-span value: the caches must give up on such a key and stay correct.
      return `req-${hex(random, 8)}`;
    case 5:
      return Array.from({ length: Math.floor(random() * 4) }, () => pick(random, [pick(random, STRINGS), pick(random, NUMBERS), random() < 0.5, null, undefined]));
    case 6:
      return new Uint8Array(Array.from({ length: Math.floor(random() * 5) }, () => Math.floor(random() * 256)));
    default:
      return { nested: attributeValue(random, depth + 1), list: [attributeValue(random, depth + 1)] };
  }
}

function attributes(random: () => number, count: number): Attributes {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) out[pick(random, ['http.request.method', 'http.route', 'url.path', 'sidecar.request_id', 'k', 'ключ', `key.${i}`])] = random() < 0.05 ? undefined : attributeValue(random);
  return out as Attributes;
}

function hrTime(random: () => number): HrTime {
  return [Math.floor(1_600_000_000 + random() * 400_000_000), Math.floor(random() * 1_000_000_000)];
}

/** Mostly valid lowercase hex; now and then uppercase, or with a character that is not hex. */
function id(random: () => number, bytes: number): string {
  const value = hex(random, bytes);
  const roll = random();
  if (roll < 0.1) return value.toUpperCase();
  if (roll < 0.15) return `${value.slice(0, 5)}g${value.slice(6)}`;
  return value;
}

function context(random: () => number, isRemote?: boolean): SpanContext {
  return {
    traceId: id(random, 16),
    spanId: id(random, 8),
    traceFlags: random() < 0.5 ? TraceFlags.SAMPLED : TraceFlags.NONE,
    traceState: random() < 0.3 ? new TraceState('vendor=value,other=1') : undefined,
    isRemote,
  };
}

const RESOURCES = [resourceFromAttributes({ 'service.name': 'sidecar', 'service.version': '1.2.3' }), resourceFromAttributes({ 'service.name': 'other', 'host.name': 'pod-1', count: 3 })];
const SCOPES = [{ name: 'sidecar' }, { name: 'sidecar', version: '0.1.0' }, { name: 'other', version: '', schemaUrl: 'https://opentelemetry.io/schemas/1.26.0' }];

function syntheticSpan(random: () => number): ReadableSpan {
  const spanContext = context(random);
  const parentSpanContext = random() < 0.6 ? context(random, random() < 0.5) : undefined;
  const events: TimedEvent[] = Array.from({ length: Math.floor(random() * 3) }, () => ({
    name: pick(random, STRINGS),
    time: hrTime(random),
    attributes: random() < 0.7 ? attributes(random, 3) : undefined,
    droppedAttributesCount: random() < 0.2 ? 2 : undefined,
  }));
  const links: Link[] = Array.from({ length: Math.floor(random() * 2) }, () => ({
    context: context(random, random() < 0.5),
    attributes: random() < 0.5 ? attributes(random, 2) : undefined,
    droppedAttributesCount: random() < 0.2 ? 1 : undefined,
  }));
  return {
    name: pick(random, STRINGS),
    kind: pick(random, [SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER]),
    spanContext: () => spanContext,
    parentSpanContext,
    startTime: hrTime(random),
    endTime: hrTime(random),
    status: pick(random, [{ code: SpanStatusCode.UNSET }, { code: SpanStatusCode.OK }, { code: SpanStatusCode.ERROR, message: pick(random, STRINGS) }]),
    attributes: attributes(random, Math.floor(random() * 12)),
    links,
    events,
    duration: [0, 1000],
    ended: true,
    resource: pick(random, RESOURCES),
    instrumentationScope: pick(random, SCOPES),
    droppedAttributesCount: random() < 0.1 ? 4 : 0,
    droppedEventsCount: random() < 0.1 ? 300 : 0,
    droppedLinksCount: random() < 0.1 ? 1 : 0,
  };
}

function reference(spans: ReadableSpan[]): Buffer {
  const bytes = ProtobufTraceSerializer.serializeRequest(spans);
  if (bytes === undefined) throw new Error('the reference serializer returned nothing');
  return Buffer.from(bytes);
}

t.test('arbitrary spans encode to the bytes of OpenTelemetry’s serializer, first time and cached', async (t) => {
  for (let seed = 1; seed <= 200; seed++) {
    const random = generator(seed);
    const spans = Array.from({ length: 1 + Math.floor(random() * 20) }, () => syntheticSpan(random));
    const expected = reference(spans);
    const first = Buffer.from(encodeTraceExportRequest(spans));
    const again = Buffer.from(encodeTraceExportRequest(spans));
    if (!expected.equals(first) || !expected.equals(again)) {
      t.fail(`seed ${seed}: ${first.length}/${again.length} bytes against ${expected.length}, first difference at ${firstDifference(expected, first)}`);
      return;
    }
  }
  t.pass('200 batches of synthetic spans are byte-identical');
});

t.test('spans of the SDK encode to the same bytes, also once a key has too many values to cache', async (t) => {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ resource: RESOURCES[0], spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  const tracer = provider.getTracer('sidecar', '0.1.0');
  const count = ATTRIBUTE_VALUES_CACHED_PER_KEY * 3;
  for (let i = 0; i < count; i++) {
    const span = tracer.startSpan('GET /items', { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET', 'server.port': 8080 } });
    span.setAttribute('sidecar.request_id', `request-${i}`);
    span.setAttribute('http.response.status_code', i % 7 === 0 ? 503 : 200);
    span.setAttribute('sidecar.attempts', 1 + (i % 3));
    span.addEvent('sidecar.breaker.rejected', { 'sidecar.cluster': 'app' });
    if (i % 7 === 0) span.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream 503' });
    span.end();
  }
  const spans = exporter.getFinishedSpans();
  t.equal(spans.length, count);
  for (const batch of [spans.slice(0, 10), spans, spans.slice(count - 10)]) {
    t.ok(reference(batch).equals(Buffer.from(encodeTraceExportRequest(batch))), `a batch of ${batch.length} spans is byte-identical`);
  }
  await provider.shutdown();
});

t.test('a resource still waiting for its detectors is encoded as it is at each export', async (t) => {
  const attributes: Record<string, string> = { 'service.name': 'sidecar' };
  const pending = { asyncAttributesPending: true, attributes } as unknown as ReadableSpan['resource'];
  const span = { ...syntheticSpan(generator(7)), resource: pending };
  t.ok(reference([span]).equals(Buffer.from(encodeTraceExportRequest([span]))), 'before the detector answered');
  attributes['host.name'] = 'pod-1';
  t.ok(reference([span]).equals(Buffer.from(encodeTraceExportRequest([span]))), 'after: the new attribute is in the request');
});

t.test('an empty batch is an empty request', async (t) => {
  t.equal(encodeTraceExportRequest([]).length, 0);
  t.same(Buffer.from(encodeTraceExportRequest([])), reference([]));
});

function firstDifference(a: Buffer, b: Buffer): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return i;
  return length;
}
