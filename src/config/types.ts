/**
 * The compiled, immutable runtime configuration ("snapshot").
 *
 * The YAML file is parsed and validated once (see load.ts) and compiled into these
 * plain frozen objects: durations are milliseconds, sizes are bytes, paths are absolute,
 * route matchers are precompiled, and every default is already applied. A request takes
 * one snapshot reference when it starts and never sees another one; a reload builds a
 * new snapshot and swaps the reference.
 */

import type { EgressRule } from './egress';
import type { RouteRegex } from './route-regex';

export type HttpMethod = string;

export interface AdminConfig {
  readonly host: string;
  readonly port: number;
  /** Bearer token required for every admin endpoint but /live and /ready, when set. */
  readonly token: string | undefined;
  /** undefined: `admin.recorder: false`, nothing is recorded. */
  readonly recorder: RecorderConfig | undefined;
}

export interface RecorderConfig {
  readonly requests: number;
  readonly failures: number;
  readonly maxBytes: number;
  /** Lower-case names, the always-redacted ones included. */
  readonly redactHeaders: ReadonlySet<string>;
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
  /** HTTP_PROXY mode; undefined: CONNECT is refused (405). */
  readonly forwardProxy: ForwardProxyConfig | undefined;
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
  /** What happens to a path holding `%2F` or `%5C` (see EscapedSlashes). */
  readonly escapedSlashes: EscapedSlashes;
  /** What a plain listener serves on its port: HTTP/1.1, and HTTP/2 with prior knowledge (`h2c`). */
  readonly protocols: readonly ListenerProtocol[];
}

export interface ForwardProxyConfig {
  /** CONNECT destinations allowed, in order; the first that matches labels the tunnel's metrics. */
  readonly allow: readonly EgressRule[];
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
}
/**
 * A path holding an encoded slash or backslash: keep (forwarded as sent; routes see `%2F` as
 * one character of a segment), reject (400 BAD_REQUEST), or unescape-and-redirect (a redirect
 * to the decoded, normalised path, so `/public/..%2Fadmin` becomes `/admin` and meets the
 * routes as what the app will read).
 */
export type EscapedSlashes = 'keep' | 'reject' | 'unescape-and-redirect';


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

/** `routes[].access`: who may use the route. Every non-empty list must admit the client. */
export interface AccessRules {
  /** Peer addresses admitted; empty: any address not denied. */
  readonly allow: readonly CidrBlock[];
  /** Peer addresses refused, whatever `allow` says. */
  readonly deny: readonly CidrBlock[];
  /** mTLS client-certificate SANs (URI, DNS, email, IP values) admitted; empty: no certificate needed. */
  readonly clientCertSans: readonly string[];
}

/** An allowed CORS origin: exact (`https://app.example`), any (`*`), or any subdomain (`*.example.com`). */
export type OriginPattern =
  | { readonly kind: 'exact'; readonly origin: string }
  | { readonly kind: 'any' }
  | { readonly kind: 'subdomain'; readonly suffix: string };

/** `routes[].cors`. */
export interface CorsPolicy {
  readonly allowOrigins: readonly OriginPattern[];
  /** Upper-case methods. */
  readonly allowMethods: readonly string[];
  /** Lower-case header names. */
  readonly allowHeaders: readonly string[];
  readonly exposeHeaders: readonly string[];
  readonly maxAgeSeconds: number;
  readonly allowCredentials: boolean;
}

/** One JSON Web Key, as read from a JWKS (plain data). */
export type JsonWebKey = Readonly<Record<string, unknown>>;

export interface JwtAuth {
  readonly kind: 'jwt';
  readonly issuer: string;
  readonly audiences: readonly string[];
  /** Exactly one of url and keys (the file's, read at load). */
  readonly jwksUrl: string | undefined;
  readonly jwksFile: string | undefined;
  readonly jwksKeys: readonly JsonWebKey[] | undefined;
  readonly jwksRefreshIntervalMs: number;
  readonly jwksTimeoutMs: number;
  readonly algorithms: readonly string[];
  readonly clockSkewSeconds: number;
  /** [claim, lower-case header] pairs. */
  readonly claimsToHeaders: ReadonlyArray<readonly [string, string]>;
  readonly forwardToken: boolean;
}

export interface BasicAuth {
  readonly kind: 'basic';
  readonly usersFile: string;
  readonly realm: string;
  /** [user, bcrypt hash] pairs, as read at load. */
  readonly users: ReadonlyArray<readonly [string, string]>;
}

export interface ExternalAuth {
  readonly kind: 'external';
  readonly url: string;
  readonly timeoutMs: number;
  readonly pathPrefix: string;
  /** Lower-case names. */
  readonly requestHeaders: readonly string[];
  readonly responseHeaders: readonly string[];
  readonly failureMode: 'deny' | 'allow';
  readonly cacheForMs: number;
}

export type AuthPolicy = JwtAuth | BasicAuth | ExternalAuth;

export type ContentEncoding = 'br' | 'gzip' | 'zstd';

/** `routes[].compression`. */
export interface CompressionPolicy {
  readonly algorithms: readonly ContentEncoding[];
  readonly minBytes: number;
  /** Lower-case `type/subtype` or `type/*`. */
  readonly contentTypes: readonly string[];
}

export interface WebSocketPolicy {
  /** A tunnel with no byte in either direction for this long is closed. */
  readonly idleTimeoutMs: number;
}

/** What a request is counted or hashed by: its client's address, one value for the route, or a request header's value. */
export type RequestKey =
  | { readonly kind: 'client' }
  | { readonly kind: 'route' }
  /** `header`: lower-case name; requests without it share one key. */
  | { readonly kind: 'header'; readonly header: string };

/** `routes[].rateLimit`: a token bucket per key. */
export interface RateLimitPolicy {
  readonly requests: number;
  readonly perMs: number;
  readonly burst: number;
  readonly key: RequestKey;
  /** Keyed buckets kept at most (least recently used forgotten first). */
  readonly maxKeys: number;
}

/** `routes[].fault`: delays and/or aborts injected for a share of requests. */
export interface FaultPolicy {
  readonly delay: { readonly durationMs: number; readonly percent: number } | undefined;
  readonly abort: { readonly status: number; readonly percent: number } | undefined;
  /** Lower-case header name: only requests carrying it are eligible; a 0-100 value replaces both percentages. */
  readonly header: string | undefined;
}

/** `routes[].weightedClusters`: each request goes to one cluster, in proportion to the weights. */
export interface WeightedSplit {
  readonly clusters: ReadonlyArray<{ readonly cluster: string; readonly weight: number }>;
  /** The sum of the weights (> 0). */
  readonly totalWeight: number;
  /** `hashOn`: what keeps one user on one side; undefined: each request is drawn at random. */
  readonly hashOn: RequestKey | undefined;
}

/** `routes[].mirror`: a fire-and-forget copy of a share of requests to a shadow cluster. */
export interface MirrorPolicy {
  readonly cluster: string;
  readonly percent: number;
  /** Bodies up to this size are copied; a larger request is not mirrored. */
  readonly maxBodyBytes: number;
}

export interface ClusterRoute extends RouteBase {
  readonly action: 'cluster';
  /**
   * The route's cluster; for a weighted split, its heaviest cluster (what WebSocket upgrades
   * use, and what the route is listed under where one cluster is shown).
   */
  readonly cluster: string;
  /** `weightedClusters`: the cluster is chosen per request; undefined for a route with `cluster`. */
  readonly split: WeightedSplit | undefined;
  /** Replaces the matched prefix (only for `prefix` matches), or undefined to keep the path. */
  readonly rewritePrefix: string | undefined;
  /** Host header sent upstream: 'auto' (the endpoint's host) or a name; undefined keeps the client's. */
  readonly hostRewrite: string | undefined;
  /** Deadline over all attempts and backoffs. */
  readonly timeoutMs: number;
  readonly retry: RetryPolicy;
  readonly websocket: WebSocketPolicy;
  /** undefined: no rate limit (and no step in the chain). */
  readonly rateLimit: RateLimitPolicy | undefined;
  /** undefined: no fault injection (and no step in the chain). */
  readonly fault: FaultPolicy | undefined;
  /** undefined: no mirroring (and no step in the chain). */
  readonly mirror: MirrorPolicy | undefined;
  readonly access: AccessRules | undefined;
  readonly cors: CorsPolicy | undefined;
  readonly auth: AuthPolicy | undefined;
  readonly compression: CompressionPolicy | undefined;
}

export interface DirectRoute extends RouteBase {
  readonly action: 'directResponse';
  readonly directResponse: DirectResponse;
}

/** `routes[].redirect`: the parts of the request URL to replace; the query is always kept. */
export interface RedirectAction {
  readonly scheme: 'http' | 'https' | undefined;
  /** Lower-case host without port. */
  readonly host: string | undefined;
  readonly port: number | undefined;
  /** The whole path, replacing the request's. */
  readonly path: string | undefined;
  /** Replaces the matched prefix (prefix matches only). */
  readonly prefixRewrite: string | undefined;
  readonly status: 301 | 302 | 303 | 307 | 308;
}

export interface RedirectRoute extends RouteBase {
  readonly action: 'redirect';
  readonly redirect: RedirectAction;
}

export type RouteConfig = ClusterRoute | DirectRoute | RedirectRoute;

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
  /** Time between resolutions of the endpoints' host names (endpoints given by IP address are not resolved). */
  readonly dnsRefreshMs: number;
  /** Largest response header block accepted from an endpoint. */
  readonly maxResponseHeaderBytes: number;
  readonly circuitBreaker: CircuitBreakerConfig;
  readonly healthCheck: HealthCheckConfig | undefined;
  readonly outlierDetection: OutlierDetectionConfig | undefined;
  readonly retryBudget: RetryBudgetConfig;
  readonly loadBalancer: 'round-robin' | 'least-request' | 'random' | 'hash';
  /** What `loadBalancer: hash` hashes; undefined for the other balancers. */
  readonly hashOn: RequestKey | undefined;
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
