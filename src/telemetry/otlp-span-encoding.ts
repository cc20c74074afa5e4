import type { Attributes, HrTime, Link, SpanContext } from '@opentelemetry/api';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';

/**
 * The OTLP/protobuf body of an ExportTraceServiceRequest, byte for byte what
 * @opentelemetry/otlp-transformer's ProtobufTraceSerializer writes (a test holds it to that),
 * in a fraction of its time. Two things make the difference, measured by
 * bench/span-encoding.js:
 * - most attributes of a proxy's spans repeat from span to span (the method, the route, the
 *   status, the cluster, the endpoint, the user agent...): each attribute whose value
 *   repeats is encoded once and copied afterwards; a key whose values keep changing (a
 *   request id, a path) stops being cached after ATTRIBUTE_VALUES_CACHED_PER_KEY values;
 * - one pass with the nested lengths fixed up in place, instead of a sizing pass and a
 *   writing pass; the resource and scope are encoded once per object.
 *
 * Field numbers and order follow opentelemetry-proto's trace.proto and common.proto.
 */
export function encodeTraceExportRequest(spans: readonly ReadableSpan[]): Uint8Array {
  const writer = new ProtoWriter(INITIAL_BYTES_PER_SPAN * spans.length + 256);
  for (const [resource, scopes] of groupByResourceAndScope(spans)) {
    // ExportTraceServiceRequest.resource_spans = 1
    writer.tag(1, LENGTH_DELIMITED);
    const resourceSpans = writer.beginMessage();
    // ResourceSpans.resource = 1 (the encoded Resource, field header included)
    // A resource still waiting for a detector is encoded as it is now, and not kept.
    writer.raw(resource.asyncAttributesPending === true ? encoded(resource, encodeResource) : encodedOnce(resource, encodeResource));
    for (const scopeSpans of scopes.values()) {
      // ResourceSpans.scope_spans = 2
      writer.tag(2, LENGTH_DELIMITED);
      const scopeMessage = writer.beginMessage();
      const scope = scopeSpans[0].instrumentationScope;
      // ScopeSpans.scope = 1
      writer.raw(encodedOnce(scope, encodeScope));
      for (const span of scopeSpans) {
        // ScopeSpans.spans = 2
        writer.tag(2, LENGTH_DELIMITED);
        writeSpan(writer, span);
      }
      // ScopeSpans.schema_url = 3
      if (scope.schemaUrl) writer.stringField(3, scope.schemaUrl);
      writer.endMessage(scopeMessage);
    }
    // ResourceSpans.schema_url = 3
    if (resource.schemaUrl) writer.stringField(3, resource.schemaUrl);
    writer.endMessage(resourceSpans);
  }
  return writer.finish();
}

/** Bytes reserved up front per span; a batch that needs more grows the buffer once or twice. */
const INITIAL_BYTES_PER_SPAN = 512;
/** Distinct values of one attribute key kept encoded; a key with more is not cached any more. */
export const ATTRIBUTE_VALUES_CACHED_PER_KEY = 64;
/** Attribute keys with a cache, per field; keys beyond are encoded every time. */
const CACHED_ATTRIBUTE_KEYS = 64;
/**
 * Longer encoded attributes are not cached (a long user agent or path is rarely repeated),
 * which bounds the caches to 3 fields x 64 keys x 64 values x 256 bytes, 3 MiB, at worst.
 */
const MAX_CACHED_ATTRIBUTE_BYTES = 256;

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

/** W3C trace flags in the low byte; bit 8 says whether the remote bit (9) is known (OTLP `SpanFlags`). */
const SPAN_FLAGS_HAS_IS_REMOTE = 0x100;
const SPAN_FLAGS_IS_REMOTE = 0x200;

type Resource = ReadableSpan['resource'];
type Scope = ReadableSpan['instrumentationScope'];

function groupByResourceAndScope(spans: readonly ReadableSpan[]): Map<Resource, Map<Scope, ReadableSpan[]>> {
  const byResource = new Map<Resource, Map<Scope, ReadableSpan[]>>();
  for (const span of spans) {
    let byScope = byResource.get(span.resource);
    if (byScope === undefined) byResource.set(span.resource, (byScope = new Map()));
    const list = byScope.get(span.instrumentationScope);
    if (list === undefined) byScope.set(span.instrumentationScope, [span]);
    else list.push(span);
  }
  return byResource;
}

function writeSpan(writer: ProtoWriter, span: ReadableSpan): void {
  const message = writer.beginMessage();
  const context = span.spanContext();
  writer.hexBytesField(1, context.traceId);
  writer.hexBytesField(2, context.spanId);
  const traceState = context.traceState?.serialize();
  if (traceState) writer.stringField(3, traceState);
  const parent = span.parentSpanContext;
  if (parent?.spanId) writer.hexBytesField(4, parent.spanId);
  writer.stringField(5, span.name);
  // The API's SpanKind starts at INTERNAL = 0; OTLP's at SPAN_KIND_UNSPECIFIED = 0.
  writer.tag(6, VARINT);
  writer.varint(span.kind + 1);
  writer.tag(7, FIXED64);
  writer.hrTime(span.startTime);
  writer.tag(8, FIXED64);
  writer.hrTime(span.endTime);
  writeAttributes(writer, span.attributes, SPAN_ATTRIBUTES);
  writer.tag(10, VARINT);
  writer.varint(span.droppedAttributesCount);
  for (const event of span.events) writeEvent(writer, event);
  writer.tag(12, VARINT);
  writer.varint(span.droppedEventsCount);
  for (const link of span.links) writeLink(writer, link);
  writer.tag(14, VARINT);
  writer.varint(span.droppedLinksCount);
  // Span.status = 15: Status.message = 2 (when set), Status.code = 3 (always)
  writer.tag(15, LENGTH_DELIMITED);
  const status = writer.beginMessage();
  if (span.status.message) writer.stringField(2, span.status.message);
  writer.tag(3, VARINT);
  writer.varint(span.status.code);
  writer.endMessage(status);
  writer.tag(16, FIXED32);
  writer.fixed32(spanFlags(context, parent?.isRemote));
  writer.endMessage(message);
}

function spanFlags(context: SpanContext, isRemote: boolean | undefined): number {
  return (context.traceFlags & 0xff) | SPAN_FLAGS_HAS_IS_REMOTE | (isRemote ? SPAN_FLAGS_IS_REMOTE : 0);
}

/** Span.events = 11: time_unix_nano = 1, name = 2, attributes = 3, dropped_attributes_count = 4. */
function writeEvent(writer: ProtoWriter, event: TimedEvent): void {
  writer.tag(11, LENGTH_DELIMITED);
  const message = writer.beginMessage();
  writer.tag(1, FIXED64);
  writer.hrTime(event.time);
  writer.stringField(2, event.name);
  if (event.attributes) writeAttributes(writer, event.attributes, EVENT_ATTRIBUTES);
  writer.tag(4, VARINT);
  writer.varint(event.droppedAttributesCount ?? 0);
  writer.endMessage(message);
}

/** Span.links = 13: trace_id = 1, span_id = 2, trace_state = 3, attributes = 4, dropped_attributes_count = 5, flags = 6. */
function writeLink(writer: ProtoWriter, link: Link): void {
  writer.tag(13, LENGTH_DELIMITED);
  const message = writer.beginMessage();
  const context = link.context;
  writer.hexBytesField(1, context.traceId);
  writer.hexBytesField(2, context.spanId);
  const traceState = context.traceState?.serialize();
  if (traceState) writer.stringField(3, traceState);
  if (link.attributes) writeAttributes(writer, link.attributes, LINK_ATTRIBUTES);
  writer.tag(5, VARINT);
  writer.varint(link.droppedAttributesCount ?? 0);
  writer.tag(6, FIXED32);
  writer.fixed32(spanFlags(context, context.isRemote));
  writer.endMessage(message);
}

/**
 * Encoded attributes of one repeated KeyValue field, by key and then by value: each entry is
 * the whole field element, tag and length included. A key maps to null once its values proved
 * too varied to cache. (The resource's and the scope's are encoded once per object instead.)
 */
type AttributeCache = Map<string, Map<string | number | boolean, Uint8Array> | null>;

/** Span.attributes = 9, Span.Event.attributes = 3, Span.Link.attributes = 4. */
const SPAN_ATTRIBUTES = { field: 9, cache: new Map() as AttributeCache };
const EVENT_ATTRIBUTES = { field: 3, cache: new Map() as AttributeCache };
const LINK_ATTRIBUTES = { field: 4, cache: new Map() as AttributeCache };

function writeAttributes(writer: ProtoWriter, attributes: Attributes, { field, cache: byKey }: { field: number; cache: AttributeCache }): void {
  for (const key in attributes) {
    if (!Object.prototype.hasOwnProperty.call(attributes, key)) continue;
    const value = attributes[key];
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      writeKeyValue(writer, field, key, value);
      continue;
    }
    let values = byKey.get(key);
    if (values === undefined && byKey.size < CACHED_ATTRIBUTE_KEYS) byKey.set(key, (values = new Map()));
    if (values === undefined || values === null) {
      writeKeyValue(writer, field, key, value);
      continue;
    }
    const cached = values.get(value);
    if (cached !== undefined) {
      writer.raw(cached);
      continue;
    }
    const start = writer.pos;
    writeKeyValue(writer, field, key, value);
    if (values.size >= ATTRIBUTE_VALUES_CACHED_PER_KEY) byKey.set(key, null);
    else if (writer.pos - start <= MAX_CACHED_ATTRIBUTE_BYTES) values.set(value, writer.copyFrom(start));
  }
}

/** One element of a repeated KeyValue field: KeyValue.key = 1, KeyValue.value = 2 (an AnyValue). */
function writeKeyValue(writer: ProtoWriter, field: number, key: string, value: unknown): void {
  writer.tag(field, LENGTH_DELIMITED);
  const message = writer.beginMessage();
  writer.stringField(1, key);
  writer.tag(2, LENGTH_DELIMITED);
  const anyValue = writer.beginMessage();
  writeAnyValue(writer, value);
  writer.endMessage(anyValue);
  writer.endMessage(message);
}

/** Every own entry of `entries` as an element of the repeated KeyValue field `field`, without the caches. */
function writeEachKeyValue(writer: ProtoWriter, field: number, entries: Readonly<Record<string, unknown>>): void {
  for (const key in entries) {
    if (Object.prototype.hasOwnProperty.call(entries, key)) writeKeyValue(writer, field, key, entries[key]);
  }
}

/** int64 bounds for AnyValue.int_value; both are powers of two, exact as doubles. */
const INT64_MIN = -(2 ** 63);
const INT64_LIMIT = 2 ** 63;

/**
 * AnyValue: string_value = 1, bool_value = 2, int_value = 3, double_value = 4,
 * array_value = 5, kvlist_value = 6, bytes_value = 7. Anything else writes nothing.
 */
function writeAnyValue(writer: ProtoWriter, value: unknown): void {
  if (typeof value === 'string') {
    writer.stringField(1, value);
  } else if (typeof value === 'boolean') {
    writer.tag(2, VARINT);
    writer.varint(value ? 1 : 0);
  } else if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= INT64_MIN && value < INT64_LIMIT) {
      writer.tag(3, VARINT);
      writer.varint(value);
    } else {
      writer.tag(4, FIXED64);
      writer.double(value);
    }
  } else if (value instanceof Uint8Array) {
    writer.tag(7, LENGTH_DELIMITED);
    writer.bytes(value);
  } else if (Array.isArray(value)) {
    writer.tag(5, LENGTH_DELIMITED);
    const array = writer.beginMessage();
    for (const item of value as unknown[]) {
      // ArrayValue.values = 1
      writer.tag(1, LENGTH_DELIMITED);
      const element = writer.beginMessage();
      writeAnyValue(writer, item);
      writer.endMessage(element);
    }
    writer.endMessage(array);
  } else if (typeof value === 'object' && value !== null) {
    writer.tag(6, LENGTH_DELIMITED);
    const list = writer.beginMessage();
    // KeyValueList.values = 1
    writeEachKeyValue(writer, 1, value as Record<string, unknown>);
    writer.endMessage(list);
  }
}

/** The encoded form of a resource or scope, computed once per object (they live as long as the tracer). */
const encodedObjects = new WeakMap<object, Uint8Array>();

function encodedOnce<T extends object>(object: T, encode: (writer: ProtoWriter, object: T) => void): Uint8Array {
  let bytes = encodedObjects.get(object);
  if (bytes === undefined) {
    bytes = encoded(object, encode);
    encodedObjects.set(object, bytes);
  }
  return bytes;
}

function encoded<T>(object: T, encode: (writer: ProtoWriter, object: T) => void): Uint8Array {
  const writer = new ProtoWriter(1024);
  encode(writer, object);
  return writer.copyFrom(0);
}

/** ResourceSpans.resource = 1: Resource.attributes = 1, dropped_attributes_count = 2 (always 0). */
function encodeResource(writer: ProtoWriter, resource: Resource): void {
  writer.tag(1, LENGTH_DELIMITED);
  const message = writer.beginMessage();
  writeEachKeyValue(writer, 1, resource.attributes);
  writer.tag(2, VARINT);
  writer.varint(0);
  writer.endMessage(message);
}

/** ScopeSpans.scope = 1: name = 1, version = 2, attributes = 3, dropped_attributes_count = 4. */
function encodeScope(writer: ProtoWriter, scope: Scope & { attributes?: Attributes; droppedAttributesCount?: number }): void {
  writer.tag(1, LENGTH_DELIMITED);
  const message = writer.beginMessage();
  writer.stringField(1, scope.name);
  if (scope.version) writer.stringField(2, scope.version);
  if (scope.attributes) writeEachKeyValue(writer, 3, scope.attributes);
  if (scope.droppedAttributesCount) {
    writer.tag(4, VARINT);
    writer.varint(scope.droppedAttributesCount);
  }
  writer.endMessage(message);
}

const TWO_POW_32 = 0x1_0000_0000;
/** Strings shorter than this have a one-byte length and are copied in JS when ASCII (see asciiString). */
const SHORT_STRING = 0x80;
const NANOS_PER_SECOND = 1_000_000_000;

/**
 * A protobuf writer into one growing buffer. A nested message reserves one byte for its
 * length and moves its bytes when the length needs more (spans and their attribute lists
 * do: two bytes); lengths are minimal varints, as every protobuf encoder writes them.
 */
class ProtoWriter {
  private buffer: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buffer = Buffer.allocUnsafe(size);
  }

  finish(): Uint8Array {
    return this.buffer.subarray(0, this.pos);
  }

  /** A copy of what was written from `start` on. */
  copyFrom(start: number): Uint8Array {
    return Uint8Array.prototype.slice.call(this.buffer, start, this.pos);
  }

  tag(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  /** Non-negative integers below 2^64 (negative int64 values take the ten-byte two's complement form). */
  varint(value: number): void {
    this.ensure(10);
    const buffer = this.buffer;
    if (value >= 0 && value <= 0xffff_ffff) {
      let v = value >>> 0;
      while (v > 0x7f) {
        buffer[this.pos++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
      buffer[this.pos++] = v;
      return;
    }
    let [low, high] = splitInt64(value);
    while (high > 0 || low > 0x7f) {
      buffer[this.pos++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    buffer[this.pos++] = low;
  }

  fixed32(value: number): void {
    this.ensure(4);
    this.buffer.writeUInt32LE(value >>> 0, this.pos);
    this.pos += 4;
  }

  double(value: number): void {
    this.ensure(8);
    this.buffer.writeDoubleLE(value, this.pos);
    this.pos += 8;
  }

  /** A time as fixed64 nanoseconds since the epoch. */
  hrTime([seconds, nanos]: HrTime): void {
    // seconds * 1e9 passes 2^53: seconds are split at 2^16 so that every product stays exact.
    // total = upperNanos * 2^16 + lowerNanos
    const upperNanos = Math.floor(seconds / 0x1_0000) * NANOS_PER_SECOND;
    const lowerNanos = (seconds % 0x1_0000) * NANOS_PER_SECOND + nanos;
    let low = (upperNanos % 0x1_0000) * 0x1_0000 + (lowerNanos % TWO_POW_32);
    const high = Math.floor(upperNanos / 0x1_0000) + Math.floor(lowerNanos / TWO_POW_32) + Math.floor(low / TWO_POW_32);
    low %= TWO_POW_32;
    this.ensure(8);
    this.buffer.writeUInt32LE(low, this.pos);
    this.buffer.writeUInt32LE(high >>> 0, this.pos + 4);
    this.pos += 8;
  }

  bytes(value: Uint8Array): void {
    this.varint(value.length);
    this.ensure(value.length);
    this.buffer.set(value, this.pos);
    this.pos += value.length;
  }

  /** Copies bytes encoded earlier (a cached attribute, the resource). */
  raw(value: Uint8Array): void {
    this.ensure(value.length);
    this.buffer.set(value, this.pos);
    this.pos += value.length;
  }

  /** A bytes field from a hex id (trace and span ids). */
  hexBytesField(field: number, hex: string): void {
    this.tag(field, LENGTH_DELIMITED);
    const length = hex.length >>> 1;
    this.varint(length);
    this.ensure(length);
    const buffer = this.buffer;
    // Node's hex decoding stops at the first character that is not hex; the ids of the SDK
    // are always valid, anything else is decoded digit by digit as otlp-transformer does.
    if (buffer.write(hex, this.pos, length, 'hex') !== length) {
      for (let i = 0; i < length; i++) buffer[this.pos + i] = (hexDigit(hex.charCodeAt(2 * i)) << 4) | hexDigit(hex.charCodeAt(2 * i + 1));
    }
    this.pos += length;
  }

  stringField(field: number, value: string): void {
    this.tag(field, LENGTH_DELIMITED);
    if (value.length < SHORT_STRING && this.asciiString(value)) return;
    const length = Buffer.byteLength(value);
    this.varint(length);
    this.ensure(length);
    this.buffer.write(value, this.pos, length, length === value.length ? 'latin1' : 'utf8');
    this.pos += length;
  }

  /**
   * A short ASCII string with its length, copied code by code (a native encode costs more
   * than the copy for the names and values of attributes); false, with nothing written,
   * for any other string.
   */
  private asciiString(value: string): boolean {
    const length = value.length;
    this.ensure(length + 1);
    const buffer = this.buffer;
    const start = this.pos + 1;
    for (let i = 0; i < length; i++) {
      const code = value.charCodeAt(i);
      if (code > 0x7f) return false;
      buffer[start + i] = code;
    }
    buffer[this.pos] = length;
    this.pos = start + length;
    return true;
  }

  /** Reserves a length byte; returns where it is. */
  beginMessage(): number {
    this.ensure(1);
    return this.pos++;
  }

  /** Writes the length of the message begun at `lengthAt`, moving its bytes if the length takes more than one byte. */
  endMessage(lengthAt: number): void {
    const length = this.pos - lengthAt - 1;
    if (length < 0x80) {
      this.buffer[lengthAt] = length;
      return;
    }
    const lengthBytes = varintSize(length);
    this.ensure(lengthBytes - 1);
    this.buffer.copyWithin(lengthAt + lengthBytes, lengthAt + 1, this.pos);
    this.pos += lengthBytes - 1;
    let v = length;
    let at = lengthAt;
    while (v > 0x7f) {
      this.buffer[at++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buffer[at] = v;
  }

  private ensure(bytes: number): void {
    if (this.pos + bytes <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.pos + bytes) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.buffer.copy(grown, 0, 0, this.pos);
    this.buffer = grown;
  }
}

/** 0-9, a-f, A-F as their value (ids from the SDK are valid hex; anything else maps as otlp-transformer maps it). */
function hexDigit(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  return code - 55;
}

function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

/** An integer in int64 range as its two's complement [low32, high32]. */
function splitInt64(value: number): [number, number] {
  const magnitude = Math.abs(value);
  let low = magnitude % TWO_POW_32 >>> 0;
  let high = Math.floor(magnitude / TWO_POW_32) >>> 0;
  if (value < 0) {
    low = ~low >>> 0;
    high = ~high >>> 0;
    low = (low + 1) >>> 0;
    if (low === 0) high = (high + 1) >>> 0;
  }
  return [low, high];
}
