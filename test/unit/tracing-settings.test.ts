import t from 'tap';
import { parseConfigText } from '../../src/config/load';
import type { SidecarConfig } from '../../src/config/types';
import { describeSampler, resolveTracingSettings, withTracesPath } from '../../src/telemetry/tracing-settings';

function config(tracing: string | undefined): SidecarConfig {
  const yaml = `
listeners:
  - name: main
    address: 127.0.0.1:0
    routes: [{ name: ping, match: { path: /ping }, directResponse: { status: 200 } }]
${tracing === undefined ? '' : `tracing: ${tracing}`}
`;
  const loaded = parseConfigText(yaml, '/tmp/tracing.yaml');
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  return loaded.config;
}

t.test('without a tracing section and without OTEL_* variables nothing is exported', async (t) => {
  const settings = resolveTracingSettings(config(undefined), {});
  t.equal(settings.exporter, 'none');
  t.equal(settings.endpoint, undefined);
  t.same(settings.warnings, []);
});

t.test('a tracing section alone exports OTLP/HTTP protobuf to localhost:4318, service "sidecar", every trace', async (t) => {
  const settings = resolveTracingSettings(config('{}'), {});
  t.equal(settings.exporter, 'otlp-http');
  t.equal(settings.endpoint, 'http://localhost:4318/v1/traces');
  t.equal(settings.serviceName, 'sidecar');
  t.equal(describeSampler(settings.sampler), 'parentbased_traceidratio 1');
  t.same(settings.sources, { exporter: 'default', endpoint: 'default', serviceName: 'default', sampler: 'default' });
  t.same(settings.batch, { scheduledDelayMs: 5000, exportTimeoutMs: 30000, maxQueueSize: 2048, maxExportBatchSize: 512 });
});

t.test('the file endpoint is a base URL: /v1/traces is appended for otlp-http, not for otlp-grpc', async (t) => {
  t.equal(resolveTracingSettings(config('{ endpoint: "http://jaeger:4318" }'), {}).endpoint, 'http://jaeger:4318/v1/traces');
  t.equal(resolveTracingSettings(config('{ endpoint: "http://jaeger:4318/v1/traces" }'), {}).endpoint, 'http://jaeger:4318/v1/traces');
  t.equal(resolveTracingSettings(config('{ exporter: otlp-grpc, endpoint: "http://jaeger:4317" }'), {}).endpoint, 'http://jaeger:4317');
  t.equal(resolveTracingSettings(config('{ exporter: otlp-grpc }'), {}).endpoint, 'http://localhost:4317');
  t.equal(withTracesPath('http://c:4318/prefix/'), 'http://c:4318/prefix/v1/traces');
});

t.test('OTEL_* variables fill what the file leaves out, as OpenTelemetry documents them', async (t) => {
  const env = {
    OTEL_SERVICE_NAME: 'orders',
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/',
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.01',
  };
  const settings = resolveTracingSettings(config('{}'), env);
  t.equal(settings.serviceName, 'orders');
  t.equal(settings.endpoint, 'http://collector:4318/v1/traces', 'the generic endpoint gets the signal path');
  t.same(settings.sampler, { name: 'parentbased_traceidratio', ratio: 0.01 });
  t.same(settings.sources, { exporter: 'default', endpoint: 'OTEL_EXPORTER_OTLP_ENDPOINT', serviceName: 'OTEL_SERVICE_NAME', sampler: 'OTEL_TRACES_SAMPLER' });

  const specific = resolveTracingSettings(config('{}'), { ...env, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://other:9999/custom' });
  t.equal(specific.endpoint, 'http://other:9999/custom', 'the traces endpoint is used as it is, and wins over the generic one');
});

t.test('what the file sets wins over the environment', async (t) => {
  const env = {
    OTEL_SERVICE_NAME: 'from-env',
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://env:4318/v1/traces',
    OTEL_TRACES_SAMPLER: 'always_off',
    OTEL_TRACES_EXPORTER: 'console',
  };
  const settings = resolveTracingSettings(config('{ exporter: otlp-http, serviceName: from-file, endpoint: "http://file:4318", sampleRatio: 0.5 }'), env);
  t.equal(settings.exporter, 'otlp-http');
  t.equal(settings.serviceName, 'from-file');
  t.equal(settings.endpoint, 'http://file:4318/v1/traces');
  t.same(settings.sampler, { name: 'parentbased_traceidratio', ratio: 0.5 });
  t.same(settings.sources, { exporter: 'file', endpoint: 'file', serviceName: 'file', sampler: 'file' });
});

t.test('OTEL_TRACES_EXPORTER and the OTLP protocol pick the exporter when the file does not', async (t) => {
  t.equal(resolveTracingSettings(config(undefined), { OTEL_TRACES_EXPORTER: 'otlp' }).exporter, 'otlp-http', 'it enables tracing without a section');
  t.equal(resolveTracingSettings(config(undefined), { OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }).exporter, 'otlp-grpc');
  t.equal(resolveTracingSettings(config('{}'), { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' }).exporter, 'otlp-grpc');
  t.equal(resolveTracingSettings(config('{}'), { OTEL_TRACES_EXPORTER: 'none' }).exporter, 'none');
  t.equal(resolveTracingSettings(config('{ exporter: console }'), { OTEL_SDK_DISABLED: 'true' }).exporter, 'none', 'OTEL_SDK_DISABLED turns everything off');
  const zipkin = resolveTracingSettings(config('{}'), { OTEL_TRACES_EXPORTER: 'zipkin' });
  t.equal(zipkin.exporter, 'otlp-http');
  t.match(zipkin.warnings.join('\n'), /OTEL_TRACES_EXPORTER=zipkin is not supported/);
});

t.test('every documented sampler name; a bad argument means 1.0 with a warning', async (t) => {
  for (const name of ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio']) {
    t.equal(resolveTracingSettings(config('{}'), { OTEL_TRACES_SAMPLER: name, OTEL_TRACES_SAMPLER_ARG: '0.25' }).sampler.name, name);
  }
  const bad = resolveTracingSettings(config('{}'), { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '7' });
  t.same(bad.sampler, { name: 'traceidratio', ratio: 1 });
  t.match(bad.warnings.join('\n'), /OTEL_TRACES_SAMPLER_ARG=7/);
  const unknown = resolveTracingSettings(config('{}'), { OTEL_TRACES_SAMPLER: 'jaeger_remote' });
  t.equal(unknown.sources.sampler, 'default');
  t.match(unknown.warnings.join('\n'), /jaeger_remote is not supported/);
});

t.test('service.name in OTEL_RESOURCE_ATTRIBUTES is used when OTEL_SERVICE_NAME is not set', async (t) => {
  const settings = resolveTracingSettings(config('{}'), { OTEL_RESOURCE_ATTRIBUTES: 'team=payments,service.name=pay%20api' });
  t.equal(settings.serviceName, 'pay api');
  t.equal(settings.sources.serviceName, 'OTEL_RESOURCE_ATTRIBUTES');
});

t.test('OTEL_BSP_* set the batch limits; invalid values are reported and ignored', async (t) => {
  const settings = resolveTracingSettings(config('{}'), { OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_BSP_MAX_QUEUE_SIZE: 'lots' });
  t.equal(settings.batch.scheduledDelayMs, 100);
  t.equal(settings.batch.maxQueueSize, 2048);
  t.match(settings.warnings.join('\n'), /OTEL_BSP_MAX_QUEUE_SIZE=lots/);
  const badUrl = resolveTracingSettings(config('{}'), { OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' });
  t.equal(badUrl.endpoint, 'http://localhost:4318/v1/traces');
  t.match(badUrl.warnings.join('\n'), /OTEL_EXPORTER_OTLP_ENDPOINT=not a url/);
});
