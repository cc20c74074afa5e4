import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import {
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  type TraceState,
  type Tracer,
} from '@opentelemetry/api';
import { replaceBeforeAttempt } from '../core/header-list';
import { normalizePeerAddress } from '../core/peer-address';
import type { AttemptFailure } from '../upstream/error-map';
import type { PooledIdGenerator } from './ids';
import { TRACE_ID_RESPONSE_HEADER, type EventAttributes, type RequestOutcome, type RequestTrace, type RetryFacts, type TraceIdSink } from './tracing';

/** What every request trace of one Tracing shares. */
export interface TraceContextKit {
  readonly tracer: Tracer;
  /** The ids the tracer's spans get; used directly for the spans the fast paths below make. */
  readonly ids: PooledIdGenerator;
  /**
   * The sampler is parent-based: a span whose parent is not sampled is not sampled either.
   * Then an unsampled request's CLIENT spans are made as non-recording spans directly,
   * without a trip through the SDK that would reach the same decision.
   */
  readonly unsampledParentMeansUnsampled: boolean;
  /**
   * The sampler's decision for a new trace (a span without parent), from its trace id alone:
   * every sampler the settings offer decides a root span so, and the CLIENT spans of that
   * trace (same id) the same way. Undefined when every new trace is sampled.
   */
  readonly newTraceSampled: ((traceId: string) => boolean) | undefined;
  /** Reads the client's trace context (the formats `tracing.propagators` lists). */
  readonly extractor: TextMapPropagator;
  /** The request headers the extractor reads: a request with none of them starts a new trace. */
  readonly extractedHeaders: readonly string[];
  /** Writes the attempt's context for the app (always W3C traceparent, plus the listed formats). */
  readonly injector: TextMapPropagator;
  /**
   * What `injector` writes for an attempt of a new trace the sampler declined (no tracestate,
   * no baggage, flag off), as header entries, built without a context for the injector to read.
   */
  readonly declinedTraceHeaders: (traceId: string, spanId: string) => string[];
  readonly responseHeader: boolean;
  /** accessLog.query is keep: the server span has url.query and the attempts' url.full keeps the query. */
  readonly keepQuery: boolean;
}

/** Span attribute names: HTTP semantic conventions, and `sidecar.*` for the sidecar's own facts. */
const ATTR = {
  method: 'http.request.method',
  methodOriginal: 'http.request.method_original',
  status: 'http.response.status_code',
  route: 'http.route',
  resendCount: 'http.request.resend_count',
  urlPath: 'url.path',
  urlScheme: 'url.scheme',
  urlFull: 'url.full',
  urlQuery: 'url.query',
  clientAddress: 'client.address',
  serverAddress: 'server.address',
  serverPort: 'server.port',
  userAgent: 'user_agent.original',
  protocolVersion: 'network.protocol.version',
  errorType: 'error.type',
  listener: 'sidecar.listener',
  requestId: 'sidecar.request_id',
  cluster: 'sidecar.cluster',
  errorCode: 'sidecar.error.code',
  rpcSystem: 'rpc.system',
  rpcService: 'rpc.service',
  rpcMethod: 'rpc.method',
  grpcStatusCode: 'rpc.grpc.status_code',
  flags: 'sidecar.response_flags',
  attempts: 'sidecar.attempts',
  attempt: 'sidecar.attempt',
  endpoint: 'sidecar.endpoint',
  outcome: 'sidecar.attempt.outcome',
  retryReason: 'sidecar.retry.reason',
  backoffMs: 'sidecar.retry.backoff_ms',
  upgrade: 'sidecar.upgrade',
  tunnelBytesIn: 'sidecar.tunnel.bytes_in',
  tunnelBytesOut: 'sidecar.tunnel.bytes_out',
} as const;

/** Span events. */
export const EVENT_BREAKER_REJECTED = 'sidecar.breaker.rejected';

/** Methods the semantic conventions name; any other is reported as `_OTHER` (bounded cardinality). */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'QUERY']);

const HEADER_GETTER: TextMapGetter<IncomingHttpHeaders> = {
  get: (headers, key) => headers[key],
  keys: (headers) => Object.keys(headers),
};

/** Appends `name, value` to undici's flat header list. */
export const FLAT_LIST_SETTER: TextMapSetter<string[]> = {
  set: (list, key, value) => {
    list.push(key, value);
  },
};

interface EndpointFacts {
  readonly hostPort: string;
  readonly host: string;
  readonly port: number;
  readonly origin: string;
}
const endpointFacts = new Map<string, EndpointFacts>();
/** Endpoint URLs come from the config; the bound only matters for a process reloaded with ever-new URLs. */
const MAX_ENDPOINT_FACTS = 1_000;

function factsOf(endpointUrl: string): EndpointFacts {
  let facts = endpointFacts.get(endpointUrl);
  if (facts === undefined) {
    const url = new URL(endpointUrl);
    const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    facts = { hostPort: url.host, host, port, origin: url.origin };
    if (endpointFacts.size >= MAX_ENDPOINT_FACTS) endpointFacts.clear();
    endpointFacts.set(endpointUrl, facts);
  }
  return facts;
}

/**
 * The spans of one request: a SERVER span from arrival to the end of the response, and one
 * CLIENT span per upstream attempt as its child. An unsampled request still carries a trace
 * context (the app gets `traceparent` with the sampled flag off), but its spans are
 * OpenTelemetry's non-recording ones: no attribute is computed and nothing is queued.
 */
export class OtelRequestTrace implements RequestTrace {
  readonly traceId: string;
  readonly spanId: string;
  private readonly server: Span;
  private readonly serverContext: Context;
  private readonly recording: boolean;
  /** The attempts' CLIENT spans are unsampled too: they are made without the SDK. */
  private readonly unsampledAttempts: boolean;
  /** A new trace the sampler declined: its attempts' headers come from `kit.declinedTraceHeaders`. */
  private readonly declinedNewTrace: boolean;
  private readonly serverTraceState: TraceState | undefined;
  private readonly method: string;
  private attemptSpan: Span | undefined;
  private attemptStatus = 0;
  private attempts = 0;
  /** What ended the previous attempt: its failure kind or response status; the next attempt's retry reason. */
  private previousOutcome: string | undefined;
  private previousEndedAt: number | undefined;
  /** Entries (names and values) the current attempt wrote into the upstream header list. */
  private injectedEntries = 0;

  constructor(
    private readonly kit: TraceContextKit,
    req: IncomingMessage,
    res: TraceIdSink,
    listener: string,
    scheme: 'http' | 'https',
    requestId: string,
  ) {
    this.method = req.method ?? 'GET';
    if (kit.newTraceSampled !== undefined && !carriesTraceContext(req.headers, kit.extractedHeaders)) {
      const traceId = kit.ids.generateTraceId();
      if (!kit.newTraceSampled(traceId)) {
        // Most requests at a low ratio: a new trace, not sampled. Only its ids are made (the
        // SDK would return the same non-recording span after extracting nothing, sampling
        // and copying contexts), and the app still gets them with the sampled flag off.
        this.traceId = traceId;
        this.spanId = kit.ids.generateSpanId();
        // Its spans are never read but for isRecording() and end(): one shared no-op span serves.
        this.server = NON_RECORDING_SPAN;
        // Nothing was extracted: an attempt's context holds only its own span.
        this.serverContext = ROOT_CONTEXT;
        this.serverTraceState = undefined;
        this.recording = false;
        this.unsampledAttempts = true;
        this.declinedNewTrace = true;
        return;
      }
      kit.ids.useForNextTrace(traceId);
    }
    const parent = kit.extractor.extract(ROOT_CONTEXT, req.headers, HEADER_GETTER);
    this.server = kit.tracer.startSpan(this.method, { kind: SpanKind.SERVER }, parent);
    this.serverContext = trace.setSpan(parent, this.server);
    const context = this.server.spanContext();
    this.traceId = context.traceId;
    this.spanId = context.spanId;
    this.serverTraceState = context.traceState;
    this.recording = this.server.isRecording();
    this.unsampledAttempts = !this.recording && kit.unsampledParentMeansUnsampled;
    this.declinedNewTrace = false;
    if (!this.recording) return;
    this.server.setAttributes(serverAttributes(req, this.method, listener, scheme, requestId, kit.keepQuery));
    if (kit.responseHeader) res.setHeader(TRACE_ID_RESPONSE_HEADER, this.traceId);
  }

  attemptStarted(attempt: number, endpointUrl: string, path: string, upstreamHeaders: string[], retry?: RetryFacts): void {
    if (this.attemptSpan !== undefined) this.closeAttempt(undefined);
    this.attempts = attempt;
    this.attemptStatus = 0;
    if (this.declinedNewTrace) {
      // The app gets the attempt's ids in its headers; nothing else of the span exists.
      this.attemptSpan = NON_RECORDING_SPAN;
      this.injectedEntries = replaceBeforeAttempt(upstreamHeaders, this.injectedEntries, this.kit.declinedTraceHeaders(this.traceId, this.kit.ids.generateSpanId()));
      return;
    }
    const endpoint = factsOf(endpointUrl);
    const span =
      this.unsampledAttempts
        ? trace.wrapSpanContext({ traceId: this.traceId, spanId: this.kit.ids.generateSpanId(), traceFlags: TraceFlags.NONE, traceState: this.serverTraceState })
        : this.kit.tracer.startSpan(`${this.method} ${endpoint.hostPort}`, { kind: SpanKind.CLIENT }, this.serverContext);
    this.attemptSpan = span;
    if (span.isRecording()) {
      const queryAt = path.indexOf('?');
      const attributes: Attributes = {
        [ATTR.method]: KNOWN_METHODS.has(this.method) ? this.method : '_OTHER',
        [ATTR.serverAddress]: endpoint.host,
        [ATTR.serverPort]: endpoint.port,
        [ATTR.urlFull]: endpoint.origin + (queryAt === -1 || this.kit.keepQuery ? path : path.slice(0, queryAt)),
        [ATTR.endpoint]: endpointUrl,
        [ATTR.attempt]: attempt,
      };
      if (attempt > 1) {
        attributes[ATTR.resendCount] = attempt - 1;
        const reason = retry?.reason ?? this.previousOutcome;
        if (reason !== undefined) attributes[ATTR.retryReason] = reason;
        const backoffMs = retry?.backoffMs ?? (this.previousEndedAt === undefined ? undefined : performance.now() - this.previousEndedAt);
        if (backoffMs !== undefined) attributes[ATTR.backoffMs] = Math.round(backoffMs * 10) / 10;
      }
      span.setAttributes(attributes);
    }
    const entries: string[] = [];
    this.kit.injector.inject(trace.setSpan(this.serverContext, span), entries, FLAT_LIST_SETTER);
    this.injectedEntries = replaceBeforeAttempt(upstreamHeaders, this.injectedEntries, entries);
  }

  attemptResponded(status: number): void {
    this.attemptStatus = status;
  }

  attemptEnded(failure?: AttemptFailure): void {
    if (this.attemptSpan !== undefined) this.closeAttempt(failure);
  }

  event(name: string, attributes?: EventAttributes): void {
    const span = this.attemptSpan ?? this.server;
    if (span.isRecording()) span.addEvent(name, attributes);
  }

  end(outcome: RequestOutcome): void {
    if (this.attemptSpan !== undefined) this.closeAttempt(undefined);
    const server = this.server;
    if (this.recording) {
      if (outcome.route !== undefined) {
        server.updateName(`${this.method} ${outcome.route}`);
        server.setAttribute(ATTR.route, outcome.route);
      }
      server.setAttribute(ATTR.status, outcome.status);
      if (outcome.cluster !== undefined) server.setAttribute(ATTR.cluster, outcome.cluster);
      if (outcome.grpc !== undefined) this.describeGrpc(outcome.grpc);
      if (outcome.flags !== undefined) server.setAttribute(ATTR.flags, outcome.flags);
      if (this.attempts > 0) server.setAttribute(ATTR.attempts, this.attempts);
      const tunnelBytes = outcome.tunnelBytes;
      if (tunnelBytes !== undefined) {
        server.setAttributes({ [ATTR.upgrade]: 'websocket', [ATTR.tunnelBytesIn]: tunnelBytes.in, [ATTR.tunnelBytesOut]: tunnelBytes.out });
      }
      if (outcome.errorCode !== undefined) {
        server.setAttribute(ATTR.errorCode, outcome.errorCode);
        server.setAttribute(ATTR.errorType, outcome.errorCode);
        server.setStatus({ code: SpanStatusCode.ERROR, message: outcome.errorCode });
        if (outcome.errorCode === 'CIRCUIT_OPEN' || outcome.errorCode === 'OVERLOADED') {
          server.addEvent(EVENT_BREAKER_REJECTED, { [ATTR.errorCode]: outcome.errorCode, ...(outcome.cluster ? { [ATTR.cluster]: outcome.cluster } : {}) });
        }
      } else if (outcome.status >= 500) {
        server.setAttribute(ATTR.errorType, String(outcome.status));
        server.setStatus({ code: SpanStatusCode.ERROR });
      }
    }
    server.end();
  }

  /** OpenTelemetry's RPC conventions: the span is named `package.Service/Method`. */
  private describeGrpc(grpc: { readonly status: number | undefined; readonly method: string }): void {
    const server = this.server;
    server.updateName(grpc.method);
    server.setAttribute(ATTR.rpcSystem, 'grpc');
    const slash = grpc.method.lastIndexOf('/');
    if (slash > 0) {
      server.setAttribute(ATTR.rpcService, grpc.method.slice(0, slash));
      server.setAttribute(ATTR.rpcMethod, grpc.method.slice(slash + 1));
    }
    if (grpc.status !== undefined) server.setAttribute(ATTR.grpcStatusCode, grpc.status);
  }

  /** Ends the current attempt's span: with its failure, with the response it got, or as abandoned. */
  private closeAttempt(failure: AttemptFailure | undefined): void {
    const span = this.attemptSpan;
    if (span === undefined) return;
    this.attemptSpan = undefined;
    const status = this.attemptStatus;
    // Read only by a recording attempt span, which an unsampled request's attempts never are.
    if (!this.unsampledAttempts) {
      this.previousOutcome = failure?.kind ?? (status > 0 ? String(status) : 'abandoned');
      this.previousEndedAt = performance.now();
    }
    if (span.isRecording()) {
      if (status > 0) span.setAttribute(ATTR.status, status);
      if (failure !== undefined) {
        span.setAttributes({ [ATTR.outcome]: failure.kind, [ATTR.errorType]: failure.code });
        span.setStatus({ code: SpanStatusCode.ERROR, message: failure.code });
      } else if (status > 0) {
        span.setAttribute(ATTR.outcome, 'response');
        if (status >= 500) {
          span.setAttribute(ATTR.errorType, String(status));
          span.setStatus({ code: SpanStatusCode.ERROR });
        }
      } else {
        span.setAttribute(ATTR.outcome, 'abandoned');
      }
    }
    span.end();
  }
}

/** A span with an invalid context: not recording, ends as a no-op, holds nothing of a request. */
const NON_RECORDING_SPAN: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

function carriesTraceContext(headers: IncomingHttpHeaders, names: readonly string[]): boolean {
  for (const name of names) if (headers[name] !== undefined) return true;
  return false;
}

function serverAttributes(req: IncomingMessage, method: string, listener: string, scheme: 'http' | 'https', requestId: string, keepQuery: boolean): Attributes {
  const url = req.url ?? '/';
  const queryAt = url.indexOf('?');
  const known = KNOWN_METHODS.has(method);
  const attributes: Attributes = {
    [ATTR.method]: known ? method : '_OTHER',
    [ATTR.urlPath]: queryAt === -1 ? url : url.slice(0, queryAt),
    [ATTR.urlScheme]: scheme,
    [ATTR.clientAddress]: normalizePeerAddress(req.socket.remoteAddress),
    [ATTR.protocolVersion]: req.httpVersion,
    [ATTR.listener]: listener,
    [ATTR.requestId]: requestId,
  };
  if (!known) attributes[ATTR.methodOriginal] = method;
  // OpenTelemetry's url.query: the part after `?`, present only when accessLog.query is keep.
  if (keepQuery && queryAt !== -1) attributes[ATTR.urlQuery] = url.slice(queryAt + 1);
  const [host, port] = splitHostHeader(req.headers.host);
  if (host !== undefined) attributes[ATTR.serverAddress] = host;
  const serverPort = port ?? req.socket.localPort;
  if (serverPort !== undefined) attributes[ATTR.serverPort] = serverPort;
  const userAgent = req.headers['user-agent'];
  if (userAgent !== undefined) attributes[ATTR.userAgent] = userAgent;
  return attributes;
}

/** `api.example.com:8443` → [`api.example.com`, 8443]; `[::1]:80` → [`::1`, 80]. */
export function splitHostHeader(host: string | undefined): [string | undefined, number | undefined] {
  if (!host) return [undefined, undefined];
  const close = host.startsWith('[') ? host.indexOf(']') : -1;
  const colon = host.lastIndexOf(':');
  if (close !== -1) {
    const port = colon > close ? Number(host.slice(colon + 1)) : undefined;
    return [host.slice(1, close), port !== undefined && Number.isInteger(port) ? port : undefined];
  }
  if (colon === -1) return [host, undefined];
  const port = Number(host.slice(colon + 1));
  return [host.slice(0, colon), Number.isInteger(port) && colon < host.length - 1 ? port : undefined];
}
