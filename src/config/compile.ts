/**
 * Compilation: a validated document becomes the frozen runtime snapshot, with every default
 * applied (see defaults.ts) and route regexes compiled. The input is already validated: the
 * helpers here only fail on a broken invariant.
 */
import { availableParallelism } from 'node:os';
import * as nodePath from 'node:path';
import { parseCidr } from './cidr';
import * as D from './defaults';
import { type Loose } from './plain-data';
import { redactSecrets } from './redact';
import { compileRouteRegex, isRouteRegex } from './route-regex';
import {
  type ClusterDocument,
  type ConfigDocument,
  type HostPort,
  type ListenerDocument,
  type RouteDocument,
  parseAddress,
  parseEndpointUrl,
  show,
} from './schema';
import type {
  AdminConfig,
  CidrBlock,
  ClusterConfig,
  UpstreamTlsConfig,
  HeaderMutation,
  ListenerConfig,
  RetryOn,
  RetryPolicy,
  RouteConfig,
  RouteMatch,
  SidecarConfig,
  TracingConfig,
} from './types';
import { parseDurationMs, parseSizeBytes } from './units';

/** `source` of a snapshot that was not read from a file; relative paths then resolve against the working directory. */
export const EMBEDDED_SOURCE = '<embedded>';

function durationMs(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = parseDurationMs(text);
  if (value === undefined) throw new Error(`unvalidated duration ${show(text)}`);
  return value;
}

function sizeBytes(value: string | number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const bytes = parseSizeBytes(value);
  if (bytes === undefined) throw new Error(`unvalidated size ${show(value)}`);
  return bytes;
}

function hostPort(text: string): HostPort {
  const parsed = parseAddress(text);
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

function cidrBlock(text: string): CidrBlock {
  const parsed = parseCidr(text);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.block;
}

export function compile(doc: ConfigDocument, source: string, hash: string): SidecarConfig {
  const baseDir = source === EMBEDDED_SOURCE ? process.cwd() : nodePath.dirname(source);
  const resolvePath = (p: string): string => nodePath.resolve(baseDir, p);

  const adminAddress = hostPort(doc.admin?.address ?? D.DEFAULT_ADMIN_ADDRESS);
  const admin: AdminConfig = { host: adminAddress.host, port: adminAddress.port, token: doc.admin?.token };

  const clusters = new Map<string, ClusterConfig>();
  for (const c of doc.clusters ?? []) clusters.set(c.name, compileCluster(c, resolvePath));

  const t = doc.tracing;
  const tracing: TracingConfig = {
    serviceName: t?.serviceName ?? D.DEFAULT_TRACING_SERVICE_NAME,
    exporter: t === undefined ? D.DEFAULT_TRACING_EXPORTER_WITHOUT_SECTION : (t.exporter ?? D.DEFAULT_TRACING_EXPORTER),
    endpoint: t?.endpoint,
    sampleRatio: t?.sampleRatio ?? D.DEFAULT_TRACING_SAMPLE_RATIO,
    propagators: [...new Set(t?.propagators ?? D.DEFAULT_TRACING_PROPAGATORS)],
    responseHeader: t?.responseHeader ?? D.DEFAULT_TRACING_RESPONSE_HEADER,
  };

  const logPath = doc.accessLog?.path ?? D.DEFAULT_ACCESS_LOG_PATH;
  const workers = doc.workers ?? D.DEFAULT_WORKERS;

  return {
    source,
    sha256: hash,
    loadedAt: new Date(),
    admin,
    listeners: doc.listeners.map((l) => compileListener(l, resolvePath)),
    clusters,
    tracing,
    accessLog: {
      path: ['stdout', 'stderr', 'off'].includes(logPath) ? logPath : resolvePath(logPath),
      query: doc.accessLog?.query ?? D.DEFAULT_ACCESS_LOG_QUERY,
    },
    drain: {
      delayMs: durationMs(doc.drain?.delay, D.DEFAULT_DRAIN_DELAY_MS),
      timeoutMs: durationMs(doc.drain?.timeout, D.DEFAULT_DRAIN_TIMEOUT_MS),
    },
    workers: workers === 'auto' ? availableParallelism() : workers,
    // /config shows the document and it crosses to workers: no secret travels with it.
    document: redactSecrets(doc),
  };
}

function compileListener(l: ListenerDocument, resolvePath: (p: string) => string): ListenerConfig {
  const address = hostPort(l.address);
  const maxConnections = l.maxConnections ?? D.DEFAULT_LISTENER_MAX_CONNECTIONS;
  const caseInsensitive = l.pathMatching?.caseInsensitive ?? D.DEFAULT_PATH_MATCHING_CASE_INSENSITIVE;
  return {
    name: l.name,
    host: address.host,
    port: address.port,
    trustedProxies: (l.trustedProxies ?? D.DEFAULT_TRUSTED_PROXIES).map(cidrBlock),
    tls:
      l.tls === undefined
        ? undefined
        : {
            certPath: resolvePath(l.tls.cert),
            keyPath: resolvePath(l.tls.key),
            clientCaPath: l.tls.clientCa === undefined ? undefined : resolvePath(l.tls.clientCa),
            sni: (l.tls.sni ?? []).map((s) => ({
              serverNames: s.serverNames.map((n) => n.toLowerCase()),
              certPath: resolvePath(s.cert),
              keyPath: resolvePath(s.key),
            })),
          },
    routes: l.routes.map((r) => compileRoute(r, caseInsensitive)),
    maxHeaderBytes: sizeBytes(l.maxHeaderBytes, D.DEFAULT_LISTENER_MAX_HEADER_BYTES),
    headersTimeoutMs: durationMs(l.headersTimeout, D.DEFAULT_LISTENER_HEADERS_TIMEOUT_MS),
    requestTimeoutMs: durationMs(l.requestTimeout, D.DEFAULT_LISTENER_REQUEST_TIMEOUT_MS),
    keepAliveTimeoutMs: durationMs(l.keepAliveTimeout, D.DEFAULT_LISTENER_KEEP_ALIVE_TIMEOUT_MS),
    maxConnections,
    maxConnectionsPerPeer: l.maxConnectionsPerPeer ?? D.defaultMaxConnectionsPerPeer(maxConnections),
    maxHeaderCount: l.maxHeaderCount ?? D.DEFAULT_LISTENER_MAX_HEADER_COUNT,
    headersWithUnderscores: l.headersWithUnderscores ?? D.DEFAULT_LISTENER_HEADERS_WITH_UNDERSCORES,
    pathMatching: {
      caseInsensitive,
      rejectPathParameters: l.pathMatching?.rejectPathParameters ?? D.DEFAULT_PATH_MATCHING_REJECT_PATH_PARAMETERS,
    },
    protocols: l.protocols ?? D.DEFAULT_LISTENER_PROTOCOLS,
  };
}

/** `caseInsensitive`: the listener's pathMatching; paths and prefixes are kept lower-case, regexes compile case-insensitive. */
function compileMatch(m: RouteDocument['match'], caseInsensitive: boolean): RouteMatch {
  const base = {
    methods: m.methods === undefined ? undefined : new Set(m.methods.map((x) => x.toUpperCase())),
    headers: Object.entries(m.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v] as const),
    host: m.host?.toLowerCase(),
    caseInsensitive,
  };
  const fold = (text: string): string => (caseInsensitive ? text.toLowerCase() : text);
  if (m.regex !== undefined) return { kind: 'regex', value: m.regex, regex: compileRouteRegex(m.regex, caseInsensitive), ...base };
  if (m.prefix !== undefined) return { kind: 'prefix', value: fold(m.prefix), regex: undefined, ...base };
  if (m.path !== undefined) return { kind: 'path', value: fold(m.path), regex: undefined, ...base };
  throw new Error('route match without path, prefix or regex');
}

function compileHeaders(h: { add?: Record<string, string>; remove?: string[] } | undefined): HeaderMutation {
  return {
    add: Object.entries(h?.add ?? {}).map(([k, v]) => [k.toLowerCase(), v] as const),
    remove: (h?.remove ?? []).map((k) => k.toLowerCase()),
  };
}

function compileRetry(r: RouteDocument['retry']): RetryPolicy {
  return {
    attempts: r === undefined ? D.DEFAULT_RETRY_ATTEMPTS_WITHOUT_POLICY : (r.attempts ?? D.DEFAULT_RETRY_ATTEMPTS),
    on: new Set<RetryOn>(r?.on ?? D.DEFAULT_RETRY_ON),
    statusCodes: new Set(r?.statusCodes ?? D.DEFAULT_RETRY_STATUS_CODES),
    perTryTimeoutMs: r?.perTryTimeout === undefined ? D.DEFAULT_PER_TRY_TIMEOUT_MS : durationMs(r.perTryTimeout, 0),
    backoff: {
      baseMs: durationMs(r?.backoff?.base, D.DEFAULT_BACKOFF_BASE_MS),
      maxMs: durationMs(r?.backoff?.max, D.DEFAULT_BACKOFF_MAX_MS),
    },
    methods: new Set((r?.methods ?? D.DEFAULT_RETRY_METHODS).map((x) => x.toUpperCase())),
    idempotencyKey: r?.idempotencyKey ?? D.DEFAULT_RETRY_IDEMPOTENCY_KEY,
    maxBodyBytes: sizeBytes(r?.maxBodyBytes, D.DEFAULT_RETRY_MAX_BODY_BYTES),
  };
}

function compileRoute(r: RouteDocument, caseInsensitive: boolean): RouteConfig {
  const base = {
    name: r.name,
    match: compileMatch(r.match, caseInsensitive),
    requestHeaders: compileHeaders(r.requestHeaders),
    responseHeaders: compileHeaders(r.responseHeaders),
    maxRequestBodyBytes: sizeBytes(r.maxRequestBodyBytes, D.DEFAULT_MAX_REQUEST_BODY_BYTES),
  };
  if (r.directResponse !== undefined) {
    return {
      ...base,
      action: 'directResponse',
      directResponse: {
        status: r.directResponse.status,
        body: r.directResponse.body ?? D.DEFAULT_DIRECT_RESPONSE_BODY,
        contentType: r.directResponse.contentType ?? D.DEFAULT_DIRECT_RESPONSE_CONTENT_TYPE,
      },
    };
  }
  if (r.cluster === undefined) throw new Error('route without cluster or directResponse');
  return {
    ...base,
    action: 'cluster',
    cluster: r.cluster,
    rewritePrefix: r.rewritePrefix,
    hostRewrite: r.hostRewrite?.toLowerCase(),
    timeoutMs: durationMs(r.timeout, D.DEFAULT_ROUTE_TIMEOUT_MS),
    retry: compileRetry(r.retry),
    websocket: { idleTimeoutMs: durationMs(r.websocket?.idleTimeout, D.DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS) },
  };
}

function compileCluster(c: ClusterDocument, resolvePath: (p: string) => string): ClusterConfig {
  const cb = c.circuitBreaker;
  const hc = c.healthCheck;
  const od = c.outlierDetection;
  const settings: Omit<ClusterConfig, 'fingerprint'> = {
    name: c.name,
    endpoints: c.endpoints.map((e) => {
      const parsed = parseEndpointUrl(e.url);
      if (typeof parsed === 'string') throw new Error(parsed);
      return { url: parsed.origin, priority: e.priority ?? D.DEFAULT_ENDPOINT_PRIORITY };
    }),
    connectTimeoutMs: durationMs(c.connectTimeout, D.DEFAULT_CONNECT_TIMEOUT_MS),
    idleTimeoutMs: durationMs(c.idleTimeout, D.DEFAULT_IDLE_TIMEOUT_MS),
    protocol: c.protocol ?? D.DEFAULT_CLUSTER_PROTOCOL,
    maxConnections: c.maxConnections ?? D.DEFAULT_MAX_CONNECTIONS,
    maxResponseHeaderBytes: sizeBytes(c.maxResponseHeaderBytes, D.DEFAULT_MAX_RESPONSE_HEADER_BYTES),
    circuitBreaker: {
      errorThresholdPercentage: cb?.errorThresholdPercentage ?? D.DEFAULT_CB_ERROR_THRESHOLD_PERCENT,
      volumeThreshold: cb?.volumeThreshold ?? D.DEFAULT_CB_VOLUME_THRESHOLD_REQUESTS,
      windowMs: durationMs(cb?.window, D.DEFAULT_CB_WINDOW_MS),
      resetTimeoutMs: durationMs(cb?.resetTimeout, D.DEFAULT_CB_RESET_TIMEOUT_MS),
      maxConcurrentRequests: cb?.maxConcurrentRequests ?? D.DEFAULT_CB_MAX_CONCURRENT_REQUESTS,
      maxPendingRequests: cb?.maxPendingRequests ?? D.DEFAULT_CB_MAX_PENDING_REQUESTS,
    },
    healthCheck:
      hc === undefined
        ? undefined
        : {
            path: hc.path,
            intervalMs: durationMs(hc.interval, D.DEFAULT_HEALTH_CHECK_INTERVAL_MS),
            timeoutMs: durationMs(hc.timeout, D.DEFAULT_HEALTH_CHECK_TIMEOUT_MS),
            unhealthyThreshold: hc.unhealthyThreshold ?? D.DEFAULT_HEALTH_CHECK_UNHEALTHY_THRESHOLD_COUNT,
            healthyThreshold: hc.healthyThreshold ?? D.DEFAULT_HEALTH_CHECK_HEALTHY_THRESHOLD_COUNT,
          },
    outlierDetection:
      od === undefined
        ? undefined
        : {
            consecutive5xx: od.consecutive5xx ?? D.DEFAULT_OUTLIER_CONSECUTIVE_5XX_COUNT,
            baseEjectionTimeMs: durationMs(od.baseEjectionTime, D.DEFAULT_OUTLIER_BASE_EJECTION_TIME_MS),
          },
    retryBudget: {
      ratio: c.retryBudget?.ratio ?? D.DEFAULT_RETRY_BUDGET_RATIO,
      minPerSecond: c.retryBudget?.minPerSecond ?? D.DEFAULT_RETRY_BUDGET_MIN_PER_SECOND,
    },
    tls: compileUpstreamTls(c, resolvePath),
  };
  return { ...settings, fingerprint: stableStringify(settings) };
}

/** The cluster's TLS settings: its own, or the defaults when it has https:// endpoints only by URL. */
function compileUpstreamTls(c: ClusterDocument, resolvePath: (p: string) => string): UpstreamTlsConfig | undefined {
  const t = c.tls;
  const anyHttps = c.endpoints.some((e) => /^https:/i.test(e.url));
  if (t === undefined && !anyHttps) return undefined;
  return {
    caPath: t?.ca === undefined ? undefined : resolvePath(t.ca),
    certPath: t?.cert === undefined ? undefined : resolvePath(t.cert),
    keyPath: t?.key === undefined ? undefined : resolvePath(t.key),
    serverName: t?.serverName?.toLowerCase().replace(/\.$/, ''),
    minVersion: t?.minVersion ?? D.DEFAULT_UPSTREAM_TLS_MIN_VERSION,
  };
}

/** JSON with sorted keys, so equal settings give equal text whatever the key order in the file. */
export function stableStringify(value: unknown): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  const record = value as Loose;
  const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableStringify(record[k])}`).join(',')}}`;
}

/**
 * Makes a snapshot that crossed a process boundary usable, then freezes it as the compiler
 * freezes the ones it builds (a structured clone is not frozen). The clone of a compiled route
 * regex keeps its fields but not its class, so each is compiled again from its source, which
 * the primary has already validated.
 */
export function freezeSnapshot(config: SidecarConfig): SidecarConfig {
  for (const listener of config.listeners) {
    for (const route of listener.routes) {
      if (route.match.kind === 'regex') (route.match as { regex: RouteMatch['regex'] }).regex = compileRouteRegex(route.match.value, route.match.caseInsensitive);
    }
  }
  return deepFreeze(config);
}

/**
 * Freezes plain objects and arrays recursively. Maps and Sets are frozen as objects (their
 * entries stay mutable through set/add; the types expose them read-only). RegExps and route
 * regexes are left alone: a frozen RegExp cannot have its lastIndex written, and a route
 * regex writes its state cache as it matches.
 */
export function deepFreeze<T>(value: T, seen = new WeakSet<object>()): T {
  if (typeof value !== 'object' || value === null || seen.has(value) || value instanceof RegExp || isRouteRegex(value)) return value;
  seen.add(value);
  if (value instanceof Map) {
    for (const v of value.values()) deepFreeze(v, seen);
  } else if (value instanceof Set) {
    for (const v of value.values()) deepFreeze(v, seen);
  } else if (!ArrayBuffer.isView(value)) {
    for (const v of Object.values(value)) deepFreeze(v, seen);
  }
  if (!ArrayBuffer.isView(value)) Object.freeze(value);
  return value;
}
