import * as D from '../config/defaults';
import type { Propagator, SidecarConfig, TracingExporter } from '../config/types';

/**
 * The effective tracing settings: the YAML `tracing` section, the standard OTEL_* variables,
 * and the defaults, merged by one rule: a field the YAML file sets wins; a field it leaves out
 * is taken from the OpenTelemetry variable that covers it; then the built-in default. (This is
 * the rule of OpenTelemetry's own file-based configuration: what a reviewed, versioned file
 * says is not overridden by the environment.)
 *
 * Pure: the environment is a parameter, and problems come back as warnings to log.
 */

export type SamplerName =
  | 'always_on'
  | 'always_off'
  | 'traceidratio'
  | 'parentbased_always_on'
  | 'parentbased_always_off'
  | 'parentbased_traceidratio';

export interface SamplerSetting {
  readonly name: SamplerName;
  /** Used by the traceidratio samplers only. */
  readonly ratio: number;
}

/** BatchSpanProcessor limits; OTEL_BSP_* as OpenTelemetry documents them. */
export interface BatchSettings {
  readonly scheduledDelayMs: number;
  readonly exportTimeoutMs: number;
  readonly maxQueueSize: number;
  readonly maxExportBatchSize: number;
}

export interface TracingSettings {
  readonly exporter: TracingExporter;
  /** The URL spans are sent to (otlp exporters only). */
  readonly endpoint: string | undefined;
  readonly serviceName: string;
  readonly sampler: SamplerSetting;
  readonly propagators: readonly Propagator[];
  readonly responseHeader: boolean;
  /** accessLog.query is keep: spans carry the query string (url.query, url.full) too. */
  readonly keepQuery: boolean;
  readonly batch: BatchSettings;
  /** Where each setting came from: `file`, an environment variable's name, or `default`. */
  readonly sources: Readonly<Record<'exporter' | 'endpoint' | 'serviceName' | 'sampler', string>>;
  readonly warnings: readonly string[];
}

/** OpenTelemetry's documented BatchSpanProcessor defaults. */
export const DEFAULT_BSP_SCHEDULE_DELAY_MS = 5_000;
export const DEFAULT_BSP_EXPORT_TIMEOUT_MS = 30_000;
export const DEFAULT_BSP_MAX_QUEUE_SPANS = 2_048;
export const DEFAULT_BSP_MAX_EXPORT_BATCH_SPANS = 512;
/** The OTLP ports Jaeger and the OpenTelemetry Collector listen on. */
export const DEFAULT_OTLP_HTTP_TRACES_URL = 'http://localhost:4318/v1/traces';
export const DEFAULT_OTLP_GRPC_URL = 'http://localhost:4317';
const OTLP_HTTP_TRACES_PATH = 'v1/traces';

export type Env = Readonly<Record<string, string | undefined>>;

/** The fields the YAML `tracing` section sets explicitly (the compiled config has defaults applied). */
interface FileTracing {
  readonly present: boolean;
  readonly exporter?: TracingExporter;
  readonly endpoint?: string;
  readonly serviceName?: string;
  readonly sampleRatio?: number;
}

export function resolveTracingSettings(config: SidecarConfig, env: Env = process.env): TracingSettings {
  const file = fileTracing(config.document);
  const warnings: string[] = [];

  let exporter: TracingExporter;
  let exporterSource: string;
  if (envBoolean(env, 'OTEL_SDK_DISABLED', warnings)) {
    exporter = 'none';
    exporterSource = 'OTEL_SDK_DISABLED';
  } else if (file.exporter !== undefined) {
    exporter = file.exporter;
    exporterSource = 'file';
  } else {
    const fromEnv = exporterFromEnv(env, warnings);
    if (fromEnv !== undefined) {
      exporter = fromEnv;
      exporterSource = 'OTEL_TRACES_EXPORTER';
    } else if (file.present) {
      // OpenTelemetry's default exporter is otlp; the protocol variables pick its transport.
      exporter = otlpFromProtocol(env, warnings) ?? D.DEFAULT_TRACING_EXPORTER;
      exporterSource = 'default';
    } else {
      exporter = D.DEFAULT_TRACING_EXPORTER_WITHOUT_SECTION;
      exporterSource = 'default';
    }
  }

  const endpoint = resolveEndpoint(exporter, file.endpoint, env, warnings);
  const serviceName = resolveServiceName(file.serviceName, env);
  const sampler = resolveSampler(file.sampleRatio, env, warnings);

  return {
    exporter,
    endpoint: endpoint.url,
    serviceName: serviceName.value,
    sampler: sampler.value,
    propagators: config.tracing.propagators,
    responseHeader: config.tracing.responseHeader,
    keepQuery: config.accessLog.query === 'keep',
    batch: {
      scheduledDelayMs: envNumber(env, 'OTEL_BSP_SCHEDULE_DELAY', DEFAULT_BSP_SCHEDULE_DELAY_MS, 0, warnings),
      exportTimeoutMs: envNumber(env, 'OTEL_BSP_EXPORT_TIMEOUT', DEFAULT_BSP_EXPORT_TIMEOUT_MS, 1, warnings),
      maxQueueSize: envNumber(env, 'OTEL_BSP_MAX_QUEUE_SIZE', DEFAULT_BSP_MAX_QUEUE_SPANS, 1, warnings),
      maxExportBatchSize: envNumber(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', DEFAULT_BSP_MAX_EXPORT_BATCH_SPANS, 1, warnings),
    },
    sources: { exporter: exporterSource, endpoint: endpoint.source, serviceName: serviceName.source, sampler: sampler.source },
    warnings,
  };
}

/** `parentbased_traceidratio 0.01`, `always_on`: how the sampler is shown in logs and the status report. */
export function describeSampler(sampler: SamplerSetting): string {
  return sampler.name.endsWith('traceidratio') ? `${sampler.name} ${sampler.ratio}` : sampler.name;
}

/**
 * One line for `sidecar validate`: each effective setting and where it came from (`file`, a
 * variable's name, or `default`), e.g. `tracing: exporter otlp-http (OTEL_TRACES_EXPORTER),
 * endpoint http://collector:4318/v1/traces (OTEL_EXPORTER_OTLP_ENDPOINT), service orders (file),
 * sampler parentbased_traceidratio 0.25 (OTEL_TRACES_SAMPLER)`. Batch limits are shown only
 * when OTEL_BSP_* changed them.
 */
export function describeTracingSettings(settings: TracingSettings): string {
  const { sources } = settings;
  if (settings.exporter === 'none') return `tracing: off (${sources.exporter})`;
  const parts = [`exporter ${settings.exporter} (${sources.exporter})`];
  if (settings.endpoint !== undefined) parts.push(`endpoint ${settings.endpoint} (${sources.endpoint})`);
  parts.push(`service ${settings.serviceName} (${sources.serviceName})`, `sampler ${describeSampler(settings.sampler)} (${sources.sampler})`);
  const b = settings.batch;
  if (
    b.scheduledDelayMs !== DEFAULT_BSP_SCHEDULE_DELAY_MS ||
    b.exportTimeoutMs !== DEFAULT_BSP_EXPORT_TIMEOUT_MS ||
    b.maxQueueSize !== DEFAULT_BSP_MAX_QUEUE_SPANS ||
    b.maxExportBatchSize !== DEFAULT_BSP_MAX_EXPORT_BATCH_SPANS
  ) {
    parts.push(`batch delay ${b.scheduledDelayMs}ms, export timeout ${b.exportTimeoutMs}ms, queue ${b.maxQueueSize}, batch size ${b.maxExportBatchSize} (OTEL_BSP_*)`);
  }
  return `tracing: ${parts.join(', ')}`;
}

function fileTracing(document: unknown): FileTracing {
  const section = isRecord(document) ? document.tracing : undefined;
  if (!isRecord(section)) return { present: false };
  return {
    present: true,
    exporter: isExporter(section.exporter) ? section.exporter : undefined,
    endpoint: typeof section.endpoint === 'string' ? section.endpoint : undefined,
    serviceName: typeof section.serviceName === 'string' ? section.serviceName : undefined,
    sampleRatio: typeof section.sampleRatio === 'number' ? section.sampleRatio : undefined,
  };
}

function exporterFromEnv(env: Env, warnings: string[]): TracingExporter | undefined {
  const raw = envString(env, 'OTEL_TRACES_EXPORTER');
  if (raw === undefined) return undefined;
  const names = raw.split(',').map((name) => name.trim().toLowerCase()).filter(Boolean);
  if (names.includes('none')) return 'none';
  for (const name of names) {
    if (name === 'otlp') return otlpFromProtocol(env, warnings) ?? 'otlp-http';
    if (name === 'console') return 'console';
    warnings.push(`OTEL_TRACES_EXPORTER=${name} is not supported (use otlp, console or none); ignored`);
  }
  return undefined;
}

function otlpFromProtocol(env: Env, warnings: string[]): TracingExporter | undefined {
  const variable = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL?.trim() ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = envString(env, variable);
  if (protocol === undefined) return undefined;
  if (protocol === 'grpc') return 'otlp-grpc';
  if (protocol === 'http/protobuf') return 'otlp-http';
  warnings.push(`${variable}=${protocol} is not supported (use http/protobuf or grpc); using http/protobuf`);
  return 'otlp-http';
}

function resolveEndpoint(
  exporter: TracingExporter,
  fromFile: string | undefined,
  env: Env,
  warnings: string[],
): { url: string | undefined; source: string } {
  if (exporter !== 'otlp-http' && exporter !== 'otlp-grpc') return { url: undefined, source: 'default' };
  const http = exporter === 'otlp-http';
  // The file's endpoint is the collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is.
  if (fromFile !== undefined) return { url: http ? withTracesPath(fromFile) : fromFile, source: 'file' };
  const specific = envUrl(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', warnings);
  if (specific !== undefined) return { url: specific, source: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' };
  const general = envUrl(env, 'OTEL_EXPORTER_OTLP_ENDPOINT', warnings);
  if (general !== undefined) return { url: http ? withTracesPath(general) : general, source: 'OTEL_EXPORTER_OTLP_ENDPOINT' };
  return { url: http ? DEFAULT_OTLP_HTTP_TRACES_URL : DEFAULT_OTLP_GRPC_URL, source: 'default' };
}

/** Appends `v1/traces` to a base URL, unless it already ends with it. */
export function withTracesPath(base: string): string {
  const trimmed = base.replace(/\/+$/, '');
  return trimmed.endsWith(`/${OTLP_HTTP_TRACES_PATH}`) ? trimmed : `${trimmed}/${OTLP_HTTP_TRACES_PATH}`;
}

function resolveServiceName(fromFile: string | undefined, env: Env): { value: string; source: string } {
  if (fromFile !== undefined) return { value: fromFile, source: 'file' };
  const named = envString(env, 'OTEL_SERVICE_NAME');
  if (named !== undefined) return { value: named, source: 'OTEL_SERVICE_NAME' };
  const fromAttributes = serviceNameInResourceAttributes(env.OTEL_RESOURCE_ATTRIBUTES);
  if (fromAttributes !== undefined) return { value: fromAttributes, source: 'OTEL_RESOURCE_ATTRIBUTES' };
  return { value: D.DEFAULT_TRACING_SERVICE_NAME, source: 'default' };
}

function serviceNameInResourceAttributes(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  for (const pair of raw.split(',')) {
    const at = pair.indexOf('=');
    if (at === -1 || pair.slice(0, at).trim() !== 'service.name') continue;
    try {
      const value = decodeURIComponent(pair.slice(at + 1).trim());
      return value || undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

const SAMPLER_NAMES: readonly SamplerName[] = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
];

function resolveSampler(fromFile: number | undefined, env: Env, warnings: string[]): { value: SamplerSetting; source: string } {
  if (fromFile !== undefined) return { value: { name: 'parentbased_traceidratio', ratio: fromFile }, source: 'file' };
  const name = envString(env, 'OTEL_TRACES_SAMPLER')?.toLowerCase();
  const fallback: SamplerSetting = { name: 'parentbased_traceidratio', ratio: D.DEFAULT_TRACING_SAMPLE_RATIO };
  if (name === undefined) return { value: fallback, source: 'default' };
  if (!(SAMPLER_NAMES as readonly string[]).includes(name)) {
    warnings.push(`OTEL_TRACES_SAMPLER=${name} is not supported (use one of ${SAMPLER_NAMES.join(', ')}); using the default`);
    return { value: fallback, source: 'default' };
  }
  let ratio = 1;
  if (name.endsWith('traceidratio')) {
    const arg = envString(env, 'OTEL_TRACES_SAMPLER_ARG');
    const parsed = arg === undefined ? 1 : Number(arg);
    // As the specification says: an invalid or missing argument means 1.0.
    if (arg !== undefined && !(Number.isFinite(parsed) && parsed >= 0 && parsed <= 1)) {
      warnings.push(`OTEL_TRACES_SAMPLER_ARG=${arg} is not a ratio from 0 to 1; using 1.0`);
    } else {
      ratio = parsed;
    }
  }
  return { value: { name: name as SamplerName, ratio }, source: 'OTEL_TRACES_SAMPLER' };
}

function envString(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

function envBoolean(env: Env, name: string, warnings: string[]): boolean {
  const value = envString(env, name)?.toLowerCase();
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  warnings.push(`${name}=${value} is neither true nor false; taken as false`);
  return false;
}

function envNumber(env: Env, name: string, fallback: number, min: number, warnings: string[]): number {
  const raw = envString(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (Number.isInteger(value) && value >= min) return value;
  warnings.push(`${name}=${raw} is not a whole number of at least ${min}; using ${fallback}`);
  return fallback;
}

function envUrl(env: Env, name: string, warnings: string[]): string | undefined {
  const raw = envString(env, name);
  if (raw === undefined) return undefined;
  try {
    const url = new URL(raw);
    if (url.protocol === 'http:' || url.protocol === 'https:') return raw;
  } catch {
    // reported below
  }
  warnings.push(`${name}=${raw} is not an http(s) URL; ignored`);
  return undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isExporter(value: unknown): value is TracingExporter {
  return value === 'otlp-http' || value === 'otlp-grpc' || value === 'console' || value === 'none';
}
