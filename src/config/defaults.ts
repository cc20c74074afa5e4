/**
 * Every default of the configuration file, one named constant each, with its unit in the
 * name. The schema's descriptions and the compiler (load.ts) both read them from here, so
 * the documented default and the applied default cannot drift apart.
 */
import type { ClusterProtocol, EscapedSlashes, HeadersWithUnderscores, ListenerProtocol, Propagator, RecorderConfig, RetryOn, TracingExporter } from './types';

const KiB = 1024;
const MiB = 1024 * KiB;

// admin
/** Loopback only: the admin API can reload config and reveal topology. */
export const DEFAULT_ADMIN_ADDRESS = '127.0.0.1:9901';
/** Flight recorder: the last requests kept, whatever their outcome. */
export const DEFAULT_RECORDER_REQUESTS = 1000;
/** Flight recorder: failures kept besides, so that a failure outlives a burst of successes. */
export const DEFAULT_RECORDER_FAILURES = 200;
/** Flight recorder: the estimated size of everything kept; the oldest entries go first beyond it. */
export const DEFAULT_RECORDER_MAX_BYTES = 16 * MiB;
/** Request and response headers whose values the recorder never keeps (configured names are added). */
export const RECORDER_ALWAYS_REDACTED_HEADERS: readonly string[] = ['authorization', 'cookie', 'set-cookie', 'proxy-authorization'];
/** The recorder's bounds when the section is absent. */
export const DEFAULT_RECORDER_SETTINGS: RecorderConfig = {
  requests: DEFAULT_RECORDER_REQUESTS,
  failures: DEFAULT_RECORDER_FAILURES,
  maxBytes: DEFAULT_RECORDER_MAX_BYTES,
  redactHeaders: new Set(RECORDER_ALWAYS_REDACTED_HEADERS),
};

// listeners
/** Node's own default; a larger value lets one client pin more memory per request. */
export const DEFAULT_LISTENER_MAX_HEADER_BYTES = 16 * KiB;
/** Time allowed to receive the complete request headers (slowloris protection). */
export const DEFAULT_LISTENER_HEADERS_TIMEOUT_MS = 10_000;
/** Time allowed to receive the whole request, body included; Node's default. 0 disables. */
export const DEFAULT_LISTENER_REQUEST_TIMEOUT_MS = 300_000;
/** Idle time before a client keep-alive connection is closed; Node's default. */
export const DEFAULT_LISTENER_KEEP_ALIVE_TIMEOUT_MS = 5_000;
export const DEFAULT_LISTENER_MAX_CONNECTIONS = 10_000;
/**
 * A listener holding this share of maxConnections is near capacity: from then on a connection
 * that has not sent a single byte gets SILENT_CONNECTION_TIMEOUT_NEAR_CAPACITY_MS instead of
 * headersTimeout (HAProxy-style), so idle sockets cannot keep new clients out.
 */
export const LISTENER_NEAR_CAPACITY_PERCENT = 90;
/** A real client sends its request (or TLS ClientHello) within milliseconds of connecting. */
export const SILENT_CONNECTION_TIMEOUT_NEAR_CAPACITY_MS = 2_000;
/**
 * Without `maxConnectionsPerPeer`, one client address may hold this share of maxConnections
 * (1 000 of the default 10 000): a single host cannot fill the listener, while a NAT gateway
 * or an untrusted load balancer in front still gets a large slice.
 */
export const DEFAULT_LISTENER_MAX_CONNECTIONS_PER_PEER_SHARE = 0.1;
/** ...but never fewer than this many (a small maxConnections must not cut a browser's 6 or a NAT's few dozen). */
export const MIN_DEFAULT_LISTENER_MAX_CONNECTIONS_PER_PEER = 100;

/** The per-peer limit applied when `maxConnectionsPerPeer` is not set (at most maxConnections itself). */
export function defaultMaxConnectionsPerPeer(maxConnections: number): number {
  const share = Math.ceil(maxConnections * DEFAULT_LISTENER_MAX_CONNECTIONS_PER_PEER_SHARE);
  return Math.min(maxConnections, Math.max(MIN_DEFAULT_LISTENER_MAX_CONNECTIONS_PER_PEER, share));
}
/** No peer is trusted: X-Forwarded-* from clients are replaced, never appended to. */
export const DEFAULT_TRUSTED_PROXIES: readonly string[] = [];
/**
 * Request header fields allowed per request (Envoy's max_headers_count default). Node's own
 * caps (1 000 on HTTP/1, 128 on HTTP/2) drop or reset silently; this one is answered with 431.
 */
export const DEFAULT_LISTENER_MAX_HEADER_COUNT = 100;
/**
 * Request headers whose names contain `_` are not forwarded (nginx's underscores_in_headers
 * off, Envoy's headers_with_underscores_action): CGI/WSGI apps read `X_Forwarded_For` as
 * X-Forwarded-For, so such a header could forge one the sidecar owns.
 */
export const DEFAULT_LISTENER_HEADERS_WITH_UNDERSCORES: HeadersWithUnderscores = 'drop';
/** A plain listener speaks HTTP/1.1 only unless h2c is asked for (a TLS listener offers h2 by ALPN regardless). */
export const DEFAULT_LISTENER_PROTOCOLS: readonly ListenerProtocol[] = ['http1'];
/** Requests reach the app over HTTP/1.1 unless the cluster says http2. */
export const DEFAULT_CLUSTER_PROTOCOL: ClusterProtocol = 'http1';
/**
 * Streams one HTTP/2 connection to an endpoint carries at once (undici's default, and what
 * most servers advertise as SETTINGS_MAX_CONCURRENT_STREAMS); an app advertising fewer is
 * respected. With maxConnections this bounds the streams in flight to one endpoint.
 */
export const HTTP2_UPSTREAM_STREAMS_PER_CONNECTION = 100;
/** Routes match the path case-sensitively, as RFC 3986 and Envoy do. */
export const DEFAULT_PATH_MATCHING_CASE_INSENSITIVE = false;
/**
 * Paths with `;` parameters are refused: servlet containers strip them before routing
 * (`/x/..;/admin` is `/admin` to Tomcat), so the app would serve a path no route matched.
 */
export const DEFAULT_PATH_MATCHING_REJECT_PATH_PARAMETERS = true;

/** Time allowed to open the connection to a CONNECT destination (listeners[].forwardProxy). */
export const DEFAULT_FORWARD_PROXY_CONNECT_TIMEOUT_MS = 5_000;
/** Silence allowed on a CONNECT tunnel before both sides are closed; the WebSocket tunnel's default. */
export const DEFAULT_FORWARD_PROXY_IDLE_TIMEOUT_MS = 300_000;

// routes
export const DEFAULT_ROUTE_TIMEOUT_MS = 15_000;
export const DEFAULT_MAX_REQUEST_BODY_BYTES = 10 * MiB;
/**
 * Silence allowed on a WebSocket tunnel (not a byte either way) before both sides are closed;
 * Envoy's stream idle timeout. Clients that ping every 30-60s stay well inside it.
 */
export const DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS = 300_000;
export const DEFAULT_DIRECT_RESPONSE_BODY = '';
export const DEFAULT_DIRECT_RESPONSE_CONTENT_TYPE = 'text/plain';

// retry
/** A route without a `retry` section is tried once. */
export const DEFAULT_RETRY_ATTEMPTS_WITHOUT_POLICY = 0;
/** A `retry` section without `attempts` retries twice (three tries in all). */
export const DEFAULT_RETRY_ATTEMPTS = 2;
/** undefined: a try is bounded only by what is left of the route timeout. */
export const DEFAULT_PER_TRY_TIMEOUT_MS: number | undefined = undefined;
export const DEFAULT_BACKOFF_BASE_MS = 25;
export const DEFAULT_BACKOFF_MAX_MS = 250;
/** Idempotent methods only: POST and PATCH may have had side effects before the failure. */
export const DEFAULT_RETRY_METHODS: readonly string[] = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'];
/**
 * Failures where the app most likely did not act on the request, or said it could not:
 * no connection, a reset before the response, and 502/503/504. A plain 500 is not retried
 * by default because it usually means the app ran and failed.
 */
export const DEFAULT_RETRY_ON: readonly RetryOn[] = ['connect-failure', 'reset', 'gateway-error'];
export const DEFAULT_RETRY_STATUS_CODES: readonly number[] = [];
export const DEFAULT_RETRY_IDEMPOTENCY_KEY = false;
/** Bodies up to this size are kept for replay; larger requests are sent once, never retried. */
export const DEFAULT_RETRY_MAX_BODY_BYTES = 64 * KiB;
/**
 * A response a retry replaces is read to its end (so its connection can be reused) while it
 * is at most this long; a longer one is cut off with its connection.
 */
export const RETRY_DISCARDED_BODY_MAX_BYTES = 64 * KiB;

// clusters
export const DEFAULT_ENDPOINT_PRIORITY = 0;
export const DEFAULT_CONNECT_TIMEOUT_MS = 1_000;
/** Shorter than the usual app keep-alive (Node 5s) so the sidecar, not the app, closes idle sockets. */
export const DEFAULT_IDLE_TIMEOUT_MS = 3_000;
/** Per endpoint. */
export const DEFAULT_MAX_CONNECTIONS = 128;
/**
 * After a connection to an endpoint received bytes no request asked for, the endpoint's
 * connections carry one request each (`Connection: close`) for this long, re-armed by each
 * new occurrence: stray bytes then have no next request to reach.
 */
export const STRAY_BYTES_NO_REUSE_MS = 60_000;
/**
 * Largest response header block accepted from the app: the listener's request limit, so the
 * sidecar refuses the same header size in both directions (larger → 502 UPSTREAM_PROTOCOL_ERROR).
 */
export const DEFAULT_MAX_RESPONSE_HEADER_BYTES = DEFAULT_LISTENER_MAX_HEADER_BYTES;
/** Time between resolutions of an endpoint's host name (Envoy's dns_refresh_rate default is 5s; records rarely move faster than their TTL). */
export const DEFAULT_DNS_REFRESH_MS = 30_000;
/** After a failed resolution the name is tried again this soon (or at dnsRefresh when shorter); the last good addresses stay in use meanwhile. */
export const DNS_FAILURE_RETRY_MS = 5_000;
/** A connect failure resolves the name again at once, but not more often than this: a dead address must not turn every failed attempt into a DNS query. */
export const DNS_MIN_EARLY_REFRESH_INTERVAL_MS = 1_000;
/** At start and on reload, a cluster with host names waits this long at most for their first answers before it takes traffic. */
export const DNS_FIRST_RESOLUTION_WAIT_MS = 5_000;

// circuit breaker (one per cluster)
export const DEFAULT_CB_ERROR_THRESHOLD_PERCENT = 50;
export const DEFAULT_CB_VOLUME_THRESHOLD_REQUESTS = 20;
export const DEFAULT_CB_WINDOW_MS = 10_000;
export const DEFAULT_CB_RESET_TIMEOUT_MS = 5_000;
export const DEFAULT_CB_MAX_CONCURRENT_REQUESTS = 1024;
export const DEFAULT_CB_MAX_PENDING_REQUESTS = 1024;
/** The rolling window is kept in this many slices; one slice of history is dropped at a time. */
export const CB_WINDOW_BUCKETS = 10;

// active health checks (only when a `healthCheck` section is present)
export const DEFAULT_HEALTH_CHECK_INTERVAL_MS = 5_000;
export const DEFAULT_HEALTH_CHECK_TIMEOUT_MS = 1_000;
export const DEFAULT_HEALTH_CHECK_UNHEALTHY_THRESHOLD_COUNT = 3;
export const DEFAULT_HEALTH_CHECK_HEALTHY_THRESHOLD_COUNT = 2;

// outlier detection (only when an `outlierDetection` section is present)
export const DEFAULT_OUTLIER_CONSECUTIVE_5XX_COUNT = 5;
export const DEFAULT_OUTLIER_BASE_EJECTION_TIME_MS = 30_000;
/** Upper bound of one ejection however often the endpoint was ejected (Envoy's default). */
export const OUTLIER_MAX_EJECTION_TIME_MS = 300_000;

// retry budget (always on: retries may add at most this share of load)
export const DEFAULT_RETRY_BUDGET_RATIO = 0.2;
export const DEFAULT_RETRY_BUDGET_MIN_PER_SECOND = 10;
/** The sliding window the ratio is measured over (Linkerd's budget TTL). */
export const RETRY_BUDGET_WINDOW_MS = 10_000;
/** Slices of that window: the budget forgets old requests one slice at a time. */
export const RETRY_BUDGET_WINDOW_BUCKETS = 10;

// tracing
export const DEFAULT_TRACING_SERVICE_NAME = 'sidecar';
/** Without a `tracing` section nothing is exported. */
export const DEFAULT_TRACING_EXPORTER_WITHOUT_SECTION: TracingExporter = 'none';
/** A `tracing` section without `exporter` exports over OTLP/HTTP. */
export const DEFAULT_TRACING_EXPORTER: TracingExporter = 'otlp-http';
export const DEFAULT_TRACING_SAMPLE_RATIO = 1.0;
export const DEFAULT_TRACING_PROPAGATORS: readonly Propagator[] = ['tracecontext', 'baggage'];
export const DEFAULT_TRACING_RESPONSE_HEADER = false;

// process
/**
 * accessLog.query: the query string is left out of the access log, spans and status by
 * default, because it often carries secrets (OAuth codes, signed-URL signatures, API keys,
 * reset tokens) and logs are kept longer and read by more people than the requests were.
 */
export const DEFAULT_ACCESS_LOG_QUERY = 'drop';
export const DEFAULT_ACCESS_LOG_PATH = 'stdout';
/** Time to stay ready=false after SIGTERM so load balancers stop sending new requests. */
export const DEFAULT_DRAIN_DELAY_MS = 5_000;
/** Time then given to in-flight requests; delay + timeout fits Kubernetes' 30s grace period. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 25_000;
export const DEFAULT_WORKERS = 1;

/** Lowest TLS version offered to an https:// endpoint (clusters[].tls.minVersion). */
export const DEFAULT_UPSTREAM_TLS_MIN_VERSION = 'TLSv1.2';

// routes[].rateLimit
/** Tokens above `requests` a quiet client may spend at once. */
export const DEFAULT_RATE_LIMIT_BURST_REQUESTS = 0;
export const DEFAULT_RATE_LIMIT_KEY = 'client';
/** Keyed buckets held per route; ~100 bytes each, so about 1 MB at the bound. */
export const DEFAULT_RATE_LIMIT_MAX_KEYS = 10_000;

// routes[].fault
/** The status of an injected abort when `abort.status` is not set. */
export const DEFAULT_FAULT_ABORT_STATUS = 503;

// clusters[].loadBalancer
export const DEFAULT_LOAD_BALANCER = 'round-robin';
/** What `loadBalancer: hash` hashes when `hashOn` is not set. */
export const DEFAULT_HASH_ON = 'client';

// routes[].mirror
export const DEFAULT_MIRROR_PERCENT = 100;
export const DEFAULT_MIRROR_MAX_BODY_BYTES = 64 * KiB;
/**
 * Shadow requests of one route in flight at most: with maxBodyBytes, the bound on the memory
 * a slow or hanging shadow cluster can hold (100 x 64KiB = 6.4 MiB by default).
 */
export const MIRROR_MAX_IN_FLIGHT_REQUESTS = 100;
// edge policies (routes[].cors, routes[].redirect, listeners[].escapedSlashes)
export const DEFAULT_CORS_ALLOW_METHODS: readonly string[] = ['GET', 'HEAD', 'POST'];
export const DEFAULT_CORS_MAX_AGE_MS = 600_000;
export const DEFAULT_CORS_ALLOW_CREDENTIALS = false;
/** 308 keeps the method and body (a 301 turns a POST into a GET in browsers). */
export const DEFAULT_REDIRECT_STATUS = 308 as const;
export const DEFAULT_LISTENER_ESCAPED_SLASHES: EscapedSlashes = 'keep';

// routes[].auth
export const DEFAULT_JWKS_REFRESH_INTERVAL_MS = 300_000;
/** A token with an unknown kid refreshes the key set at most this often (a stream of forged kids costs one fetch). */
export const JWKS_UNKNOWN_KID_COOLDOWN_MS = 30_000;
export const DEFAULT_JWKS_TIMEOUT_MS = 5_000;
export const DEFAULT_JWT_CLOCK_SKEW_MS = 60_000;
/** The app does not need the token once the sidecar verified it, and a token it never holds cannot leak from it. */
export const DEFAULT_JWT_FORWARD_TOKEN = false;
export const DEFAULT_EXTERNAL_AUTH_TIMEOUT_MS = 500;
export const DEFAULT_EXTERNAL_AUTH_REQUEST_HEADERS: readonly string[] = ['authorization', 'cookie'];
export const DEFAULT_EXTERNAL_AUTH_FAILURE_MODE = 'deny' as const;
export const DEFAULT_EXTERNAL_AUTH_CACHE_FOR_MS = 0;

// routes[].compression
export const DEFAULT_COMPRESSION_ALGORITHMS: readonly ('br' | 'gzip' | 'zstd')[] = ['br', 'gzip'];
/** Below about a kilobyte the encoding's framing eats most of the gain. */
export const DEFAULT_COMPRESSION_MIN_BYTES = 1024;
export const DEFAULT_COMPRESSION_CONTENT_TYPES: readonly string[] = [
  'text/html', 'text/plain', 'text/css', 'text/csv', 'text/javascript', 'application/javascript', 'application/json',
  'application/xml', 'application/problem+json', 'image/svg+xml',
];
/** Brotli quality for streaming: 11 (its default) costs tens of times the CPU of 4 for a few percent. */
export const COMPRESSION_BROTLI_QUALITY = 4;
