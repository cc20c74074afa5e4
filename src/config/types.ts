/**
 * The compiled, immutable runtime configuration ("snapshot").
 *
 * The YAML file is parsed and validated once (see load.ts) and compiled into these
 * plain frozen objects: durations are milliseconds, sizes are bytes, paths are absolute,
 * route matchers are precompiled, and every default is already applied. A request takes
 * one snapshot reference when it starts and never sees another one; a reload builds a
 * new snapshot and swaps the reference.
 */

import type { RouteRegex } from './route-regex';

export type HttpMethod = string;

export interface AdminConfig {
  readonly host: string;
  readonly port: number;
  /** Bearer token required for every admin endpoint but /live and /ready, when set. */
  readonly token: string | undefined;
}

export interface SniCertificate {
  readonly serverNames: readonly string[];
  readonly certPath: string;
  readonly keyPath: string;
}

export interface TlsConfig {
  readonly certPath: string;
  readonly keyPath: string;
  readonly clientCaPath: string | undefined;
  readonly sni: readonly SniCertificate[];
}

export interface ListenerConfig {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** CIDR blocks whose X-Forwarded-* values are appended to instead of replaced. */
  readonly trustedProxies: readonly CidrBlock[];
  readonly tls: TlsConfig | undefined;
  readonly routes: readonly RouteConfig[];
  readonly maxHeaderBytes: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly maxConnections: number;
  /** Connections one peer address may hold; peers in trustedProxies are exempt. */
  readonly maxConnectionsPerPeer: number;
  /** Request header fields (pseudo-headers excluded) allowed per request; more → 431. */
  readonly maxHeaderCount: number;
  readonly headersWithUnderscores: HeadersWithUnderscores;
  readonly pathMatching: PathMatching;
  /** What a plain listener serves on its port: HTTP/1.1, and HTTP/2 with prior knowledge (`h2c`). */
  readonly protocols: readonly ListenerProtocol[];
}

export type ListenerProtocol = 'http1' | 'h2c';

/** What happens to a request header whose name contains `_`. */
export type HeadersWithUnderscores = 'drop' | 'reject' | 'allow';

export interface PathMatching {
  /** Routes ignore ASCII case (see RouteMatch.caseInsensitive); the app receives the path as sent. */
  readonly caseInsensitive: boolean;
  /** A path holding `;` is refused with 400; when false, only `.;` / `..;` segments are. */
  readonly rejectPathParameters: boolean;
}

export interface CidrBlock {
  readonly text: string;
  readonly family: 'ipv4' | 'ipv6';
  readonly address: string;
  readonly prefix: number;
}

/** A compiled route matcher: no regex is built per request. */
export interface RouteMatch {
  readonly kind: 'path' | 'prefix' | 'regex';
  /** The literal path or prefix; for `regex` the source text. */
  readonly value: string;
  /** For `regex`: RE2 (linear time in the path's length). */
  readonly regex: RouteRegex | undefined;
  /** Upper-case methods, or undefined for any method. */
  readonly methods: ReadonlySet<string> | undefined;
  /** Lower-case header names with their exact expected values. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** Lower-case host without port, or undefined for any host. `*.x.com` is a suffix match. */
  readonly host: string | undefined;
  /**
   * The listener's `pathMatching.caseInsensitive`: `value` is then lower-case and compared
   * ignoring ASCII case, and `regex` was compiled case-insensitive.
   */
  readonly caseInsensitive: boolean;
}

export interface HeaderMutation {
  readonly add: ReadonlyArray<readonly [string, string]>;
  /** Lower-case header names. */
  readonly remove: readonly string[];
}

export type RetryOn =
  | '5xx'
  | 'gateway-error'
  | 'connect-failure'
  | 'reset'
  | 'retriable-4xx'
  | 'retriable-status-codes'
  // gRPC statuses (read from grpc-status of a trailers-only answer), Envoy's names:
  | 'cancelled'
  | 'deadline-exceeded'
  | 'internal'
  | 'resource-exhausted'
  | 'unavailable';

export interface BackoffConfig {
  readonly baseMs: number;
  readonly maxMs: number;
}

export interface RetryPolicy {
  /** Retries after the first try (0 disables retries). */
  readonly attempts: number;
  readonly on: ReadonlySet<RetryOn>;
  readonly statusCodes: ReadonlySet<number>;
  readonly perTryTimeoutMs: number | undefined;
  readonly backoff: BackoffConfig;
  readonly methods: ReadonlySet<string>;
  readonly idempotencyKey: boolean;
  readonly maxBodyBytes: number;
}

export interface DirectResponse {
  readonly status: number;
  readonly body: string;
  readonly contentType: string;
}

interface RouteBase {
  readonly name: string;
  readonly match: RouteMatch;
  readonly requestHeaders: HeaderMutation;
  readonly responseHeaders: HeaderMutation;
  readonly maxRequestBodyBytes: number;
}

export interface WebSocketPolicy {
  /** A tunnel with no byte in either direction for this long is closed. */
  readonly idleTimeoutMs: number;
}

export interface ClusterRoute extends RouteBase {
  readonly action: 'cluster';
  readonly cluster: string;
  /** Replaces the matched prefix (only for `prefix` matches), or undefined to keep the path. */
  readonly rewritePrefix: string | undefined;
  /** Host header sent upstream: 'auto' (the endpoint's host) or a name; undefined keeps the client's. */
  readonly hostRewrite: string | undefined;
  /** Deadline over all attempts and backoffs. */
  readonly timeoutMs: number;
  readonly retry: RetryPolicy;
  readonly websocket: WebSocketPolicy;
}

export interface DirectRoute extends RouteBase {
  readonly action: 'directResponse';
  readonly directResponse: DirectResponse;
}

export type RouteConfig = ClusterRoute | DirectRoute;

export interface EndpointConfig {
  /** Normalised origin, e.g. `http://127.0.0.1:3000`. */
  readonly url: string;
  readonly priority: number;
}

export interface CircuitBreakerConfig {
  readonly errorThresholdPercentage: number;
  readonly volumeThreshold: number;
  readonly windowMs: number;
  readonly resetTimeoutMs: number;
  readonly maxConcurrentRequests: number;
  readonly maxPendingRequests: number;
}

export interface HealthCheckConfig {
  readonly path: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
}

export interface OutlierDetectionConfig {
  readonly consecutive5xx: number;
  readonly baseEjectionTimeMs: number;
}

export interface RetryBudgetConfig {
  readonly ratio: number;
  readonly minPerSecond: number;
}

/** TLS origination to https:// endpoints. Verification is always on. */
export interface UpstreamTlsConfig {
  /** PEM CA bundle; undefined: the system roots. */
  readonly caPath: string | undefined;
  /** Client certificate and key (both or neither). */
  readonly certPath: string | undefined;
  readonly keyPath: string | undefined;
  /** SNI and verified name; undefined: each endpoint's host. */
  readonly serverName: string | undefined;
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
}

/** How requests reach a cluster's endpoints: HTTP/1.1, or HTTP/2 (h2c prior knowledge for http://, ALPN for https://). */
export type ClusterProtocol = 'http1' | 'http2';

export interface ClusterConfig {
  readonly name: string;
  readonly protocol: ClusterProtocol;
  readonly endpoints: readonly EndpointConfig[];
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxConnections: number;
  /** Largest response header block accepted from an endpoint. */
  readonly maxResponseHeaderBytes: number;
  readonly circuitBreaker: CircuitBreakerConfig;
  readonly healthCheck: HealthCheckConfig | undefined;
  readonly outlierDetection: OutlierDetectionConfig | undefined;
  readonly retryBudget: RetryBudgetConfig;
  /** TLS to the cluster's https:// endpoints; undefined when it has none. */
  readonly tls: UpstreamTlsConfig | undefined;
  /** Stable text of the settings above: equal fingerprints mean a reload may keep the cluster's state. */
  readonly fingerprint: string;
}

export type TracingExporter = 'otlp-http' | 'otlp-grpc' | 'console' | 'none';
export type Propagator = 'tracecontext' | 'baggage' | 'b3';

export interface TracingConfig {
  readonly serviceName: string;
  readonly exporter: TracingExporter;
  /** undefined: the exporter's own default (or the OTEL_EXPORTER_OTLP_* variables). */
  readonly endpoint: string | undefined;
  readonly sampleRatio: number;
  readonly propagators: readonly Propagator[];
  readonly responseHeader: boolean;
}

export interface AccessLogConfig {
  /** `stdout`, `stderr`, `off`, or an absolute file path. */
  readonly path: string;
  /** keep: the query string stays in the access log, spans and recent errors; drop: it is left out of all three. */
  readonly query: 'keep' | 'drop';
}

export interface DrainConfig {
  readonly delayMs: number;
  readonly timeoutMs: number;
}

export interface SidecarConfig {
  /** Absolute path of the YAML file this snapshot came from, or `<embedded>`. */
  readonly source: string;
  /** sha256 (hex) of the file's bytes. */
  readonly sha256: string;
  readonly loadedAt: Date;
  readonly admin: AdminConfig;
  readonly listeners: readonly ListenerConfig[];
  readonly clusters: ReadonlyMap<string, ClusterConfig>;
  readonly tracing: TracingConfig;
  readonly accessLog: AccessLogConfig;
  readonly drain: DrainConfig;
  /** Worker processes; `auto` is resolved to the number of cores. */
  readonly workers: number;
  /** The validated document as written (before compilation), for /config. Secrets are redacted (redact.ts); TLS fields are paths. */
  readonly document: unknown;
}
