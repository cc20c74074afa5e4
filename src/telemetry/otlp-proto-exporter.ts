import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import type { IExportTraceServiceResponse, ISerializer } from '@opentelemetry/otlp-transformer';
// The trace parts only: the package's index also loads its metrics and logs serializers, and
// with them @opentelemetry/sdk-metrics and api-logs (~13 MB of RSS a span exporter never uses).
import { TraceExporterMetricsHelper } from '@opentelemetry/otlp-transformer/build/src/trace';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer/build/src/trace/protobuf';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { encodeTraceExportRequest } from './otlp-span-encoding';

/** What the exporter calls itself in OpenTelemetry's own exporter metrics (the proto exporter's name). */
const COMPONENT_TYPE = 'otlp_http_span_exporter';

/** The sidecar's span encoding (the same bytes, about 3x faster) and OpenTelemetry's response decoding. */
const SERIALIZER: ISerializer<ReadableSpan[], IExportTraceServiceResponse> = {
  serializeRequest: encodeTraceExportRequest,
  deserializeResponse: ProtobufTraceSerializer.deserializeResponse,
};

/**
 * OTLP/HTTP with protobuf bodies: @opentelemetry/exporter-trace-otlp-proto's OTLPTraceExporter
 * built from the same parts (OpenTelemetry's HTTP transport with its retries, timeout,
 * bounded queue and OTEL_EXPORTER_OTLP_* settings), with the span encoding of
 * otlp-span-encoding.ts in place of the library's: at 100% sampling the library's encoding
 * was the largest single cost of tracing (see docs/PERFORMANCE.md).
 */
export class OtlpProtoSpanExporter extends OTLPExporterBase<ReadableSpan[]> implements SpanExporter {
  constructor(url: string | undefined) {
    super(
      createOtlpHttpExportDelegate(
        convertLegacyHttpOptions({ url }, 'TRACES', 'v1/traces', { 'Content-Type': 'application/x-protobuf' }),
        SERIALIZER,
        COMPONENT_TYPE,
        TraceExporterMetricsHelper,
        undefined,
      ),
    );
  }
}
