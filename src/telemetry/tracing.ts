import type { IncomingMessage } from 'node:http';
import type { ErrorCode } from '../core/errors';
import type { AttemptFailure } from '../upstream/error-map';

/**
 * What the data path knows about tracing: a per-request `RequestTrace` with a handful of hooks,
 * and the process-wide `Tracing` that hands them out. The OpenTelemetry machinery lives in
 * otel.ts and request-trace.ts; with tracing off every hook is a shared no-op object, so the
 * proxy pays a few empty calls per request and nothing else.
 */

/** The response header that carries the trace id when `tracing.responseHeader` is true. */
export const TRACE_ID_RESPONSE_HEADER = 'x-trace-id';

/** Attribute values a span event may carry. */
export type EventAttributes = Readonly<Record<string, string | number | boolean>>;

/** How a request ended, for the SERVER span. */
export interface RequestOutcome {
  readonly status: number;
  /** The matched route's name; undefined when no route matched. */
  readonly route: string | undefined;
  readonly cluster: string | undefined;
  /** Set when the sidecar answered (or cut the response) itself. */
  readonly errorCode: ErrorCode | undefined;
  /** Envoy-style response flags, see response-flags.ts. */
  readonly flags: string | undefined;
  /** A WebSocket tunnel's bytes: client to app (`in`) and app to client (`out`). */
  readonly tunnelBytes?: { readonly in: number; readonly out: number };
  /** gRPC calls: the status the client got, and the call's `package.Service/Method` (the span's name). */
  readonly grpc?: { readonly status: number | undefined; readonly method: string };
}

/** Where the trace id goes when `tracing.responseHeader` is true: the response, or a tunnel's answer. */
export interface TraceIdSink {
  setHeader(name: string, value: string): unknown;
}

/** Why an attempt after the first one was made; supplied by the retry policy when it knows. */
export interface RetryFacts {
  /** The retry condition that matched, e.g. `5xx` or `connect-failure`. */
  readonly reason?: string;
  /** The backoff the policy waited before this attempt. */
  readonly backoffMs?: number;
}

export interface RequestTrace {
  /** 32 hex digits; undefined when tracing is off. Logged even when the trace is not sampled. */
  readonly traceId: string | undefined;
  /** The SERVER span's id (16 hex digits); undefined when tracing is off. */
  readonly spanId: string | undefined;
  /**
   * A new upstream attempt starts: opens its CLIENT span (ending a previous one still open)
   * and writes the attempt's trace context into `upstreamHeaders`, just before the
   * `x-sidecar-attempt` slot, replacing what an earlier attempt wrote there.
   */
  attemptStarted(attempt: number, endpointUrl: string, path: string, upstreamHeaders: string[], retry?: RetryFacts): void;
  /** The current attempt's response headers arrived. */
  attemptResponded(status: number): void;
  /** The current attempt ended: its response completed, or it failed with `failure`. */
  attemptEnded(failure?: AttemptFailure): void;
  /** A span event on the current attempt's span, or on the request's span between attempts. */
  event(name: string, attributes?: EventAttributes): void;
  /** The response is over (sent, cut, or abandoned by the client). Ends every open span. */
  end(outcome: RequestOutcome): void;
}

/** What /stats and the status report show about tracing. */
export interface TracingDescription {
  readonly exporter: string;
  readonly endpoint: string | null;
  readonly serviceName: string | null;
  readonly sampler: string | null;
  readonly propagators: readonly string[];
  readonly responseHeader: boolean;
  readonly spans: SpanCounts;
  /** Where each setting came from: `file`, an environment variable's name, or `default`. */
  readonly sources: Readonly<Record<string, string>>;
}

export interface SpanCounts {
  exported: number;
  /** Spans dropped because the export queue was full (the collector is slow or down). */
  droppedQueueFull: number;
  /** Spans lost because their export failed (after the exporter's own retries). */
  droppedExportFailed: number;
}

/** Notified as batches of spans leave the process; the Sidecar turns these into metrics and logs. */
export interface SpanExportObserver {
  exported(count: number): void;
  dropped(reason: 'queue_full' | 'export_failed', count: number, error?: Error): void;
}

export interface Tracing {
  readonly enabled: boolean;
  /**
   * Lower-case names of the request headers the sidecar writes itself when tracing is on
   * (the client's values are dropped: the app gets exactly one trace context, the sidecar's).
   * Undefined when tracing is off: the client's trace headers then pass through untouched.
   */
  readonly ownedRequestHeaders: ReadonlySet<string> | undefined;
  startRequest(req: IncomingMessage, res: TraceIdSink, listener: string, scheme: 'http' | 'https', requestId: string): RequestTrace;
  describe(): TracingDescription;
  setObserver(observer: SpanExportObserver): void;
  /** Exports every finished span now (tests, and before a planned stop). */
  forceFlush(): Promise<void>;
  /** Flushes and stops; gives up after `timeoutMs` so that a dead collector cannot hold the process. */
  shutdown(timeoutMs: number): Promise<void>;
}

const NOOP_REQUEST_TRACE: RequestTrace = {
  traceId: undefined,
  spanId: undefined,
  attemptStarted: () => {},
  attemptResponded: () => {},
  attemptEnded: () => {},
  event: () => {},
  end: () => {},
};

/** A RequestTrace that does nothing; what every request gets while tracing is off. */
export function noopRequestTrace(): RequestTrace {
  return NOOP_REQUEST_TRACE;
}

/** Tracing switched off (`exporter: none`, no `tracing` section, or OTEL_SDK_DISABLED=true). */
export function disabledTracing(sources: Readonly<Record<string, string>> = {}): Tracing {
  return {
    enabled: false,
    ownedRequestHeaders: undefined,
    startRequest: () => NOOP_REQUEST_TRACE,
    describe: () => ({
      exporter: 'none',
      endpoint: null,
      serviceName: null,
      sampler: null,
      propagators: [],
      responseHeader: false,
      spans: { exported: 0, droppedQueueFull: 0, droppedExportFailed: 0 },
      sources,
    }),
    setObserver: () => {},
    forceFlush: async () => {},
    shutdown: async () => {},
  };
}
