/**
 * Compilation: a validated document becomes the frozen runtime snapshot, with every default
 * applied (see defaults.ts) and route regexes compiled. The input is already validated: the
 * helpers here only fail on a broken invariant.
 */
import { parseEgressRule } from './egress';
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
  parseRequestKey,
  show,
  JWT_ALGORITHMS,
} from './schema';
import type { RouteFiles } from './route-files';
import type {
  AccessRules,
  AuthPolicy,
  JsonWebKey,
  AdminConfig,
  RecorderConfig,
  CorsPolicy,
  OriginPattern,
  CidrBlock,
  ClusterConfig,
  FaultPolicy,
  RateLimitPolicy,
  RequestKey,
  WeightedSplit,
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

function compileRecorder(recorder: NonNullable<ConfigDocument['admin']>['recorder']): RecorderConfig | undefined {
  if (recorder === false) return undefined;
  return {
    requests: recorder?.requests ?? D.DEFAULT_RECORDER_REQUESTS,
    failures: recorder?.failures ?? D.DEFAULT_RECORDER_FAILURES,
    maxBytes: recorder?.maxBytes === undefined ? D.DEFAULT_RECORDER_MAX_BYTES : (parseSizeBytes(recorder.maxBytes) as number),
    redactHeaders: new Set([...D.RECORDER_ALWAYS_REDACTED_HEADERS, ...(recorder?.redactHeaders ?? []).map((h) => h.toLowerCase())]),
  };
}

export function compile(doc: ConfigDocument, source: string, hash: string, routeFiles: RouteFiles = new Map()): SidecarConfig {
  const baseDir = source === EMBEDDED_SOURCE ? process.cwd() : nodePath.dirname(source);
  const resolvePath = (p: string): string => nodePath.resolve(baseDir, p);

  const adminAddress = hostPort(doc.admin?.address ?? D.DEFAULT_ADMIN_ADDRESS);
  const admin: AdminConfig = { host: adminAddress.host, port: adminAddress.port, token: doc.admin?.token, recorder: compileRecorder(doc.admin?.recorder) };

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
    listeners: doc.listeners.map((l) => compileListener(l, resolvePath, routeFiles)),
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

function compileListener(l: ListenerDocument, resolvePath: (p: string) => string, routeFiles: RouteFiles): ListenerConfig {
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
    forwardProxy:
      l.forwardProxy === undefined
        ? undefined
        : {
            allow: l.forwardProxy.allow.map((text) => {
              const rule = parseEgressRule(text);
              if (typeof rule === 'string') throw new Error(rule);
              return rule;
            }),
            connectTimeoutMs: durationMs(l.forwardProxy.connectTimeout, D.DEFAULT_FORWARD_PROXY_CONNECT_TIMEOUT_MS),
            idleTimeoutMs: durationMs(l.forwardProxy.idleTimeout, D.DEFAULT_FORWARD_PROXY_IDLE_TIMEOUT_MS),
          },
    routes: l.routes.map((r) => compileRoute(r, caseInsensitive, resolvePath, routeFiles)),
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
    escapedSlashes: l.escapedSlashes ?? D.DEFAULT_LISTENER_ESCAPED_SLASHES,
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

function compileRoute(r: RouteDocument, caseInsensitive: boolean, resolvePath: (p: string) => string, routeFiles: RouteFiles): RouteConfig {
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
  if (r.redirect !== undefined) {
    return {
      ...base,
      action: 'redirect',
      redirect: {
        scheme: r.redirect.scheme,
        host: r.redirect.host?.toLowerCase(),
        port: r.redirect.port,
        path: r.redirect.path,
        prefixRewrite: r.redirect.prefixRewrite,
        status: r.redirect.status ?? D.DEFAULT_REDIRECT_STATUS,
      },
    };
  }
  const split = compileSplit(r);
  const cluster = r.cluster ?? heaviest(split);
  if (cluster === undefined) throw new Error('route without cluster, directResponse, redirect or weightedClusters');
  return {
    ...base,
    action: 'cluster',
    cluster,
    split,
    rewritePrefix: r.rewritePrefix,
    hostRewrite: r.hostRewrite?.toLowerCase(),
    timeoutMs: durationMs(r.timeout, D.DEFAULT_ROUTE_TIMEOUT_MS),
    retry: compileRetry(r.retry),
    websocket: { idleTimeoutMs: durationMs(r.websocket?.idleTimeout, D.DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS) },
    rateLimit: compileRateLimit(r.rateLimit),
    fault: compileFault(r.fault),
    mirror:
      r.mirror === undefined
        ? undefined
        : {
            cluster: r.mirror.cluster,
            percent: r.mirror.percent ?? D.DEFAULT_MIRROR_PERCENT,
            maxBodyBytes: sizeBytes(r.mirror.maxBodyBytes, D.DEFAULT_MIRROR_MAX_BODY_BYTES),
          },
    access: compileAccess(r.access),
    cors: compileCors(r.cors),
    auth: compileAuth(r, resolvePath, routeFiles),
    compression:
      r.compression === undefined
        ? undefined
        : {
            algorithms: [...new Set(r.compression.algorithms ?? D.DEFAULT_COMPRESSION_ALGORITHMS)],
            minBytes: sizeBytes(r.compression.minBytes, D.DEFAULT_COMPRESSION_MIN_BYTES),
            contentTypes: (r.compression.contentTypes ?? D.DEFAULT_COMPRESSION_CONTENT_TYPES).map((type) => type.toLowerCase()),
          },
  };
}

function compileSplit(r: RouteDocument): WeightedSplit | undefined {
  if (r.weightedClusters === undefined) return undefined;
  return {
    clusters: r.weightedClusters.map((w) => ({ cluster: w.cluster, weight: w.weight })),
    totalWeight: r.weightedClusters.reduce((sum, w) => sum + w.weight, 0),
    hashOn: r.hashOn === undefined ? undefined : requestKey(r.hashOn),
  };
}

function heaviest(split: WeightedSplit | undefined): string | undefined {
  let best: { cluster: string; weight: number } | undefined;
  for (const entry of split?.clusters ?? []) if (best === undefined || entry.weight > best.weight) best = entry;
  return best?.cluster;
}

function requestKey(text: string): RequestKey {
  const key = parseRequestKey(text);
  if (key === undefined) throw new Error(`unvalidated request key ${show(text)}`);
  return key;
}

function compileRateLimit(r: RouteDocument['rateLimit']): RateLimitPolicy | undefined {
  if (r === undefined) return undefined;
  return {
    requests: r.requests,
    perMs: durationMs(r.per, 0),
    burst: r.burst ?? D.DEFAULT_RATE_LIMIT_BURST_REQUESTS,
    key: requestKey(r.key ?? D.DEFAULT_RATE_LIMIT_KEY),
    maxKeys: r.maxKeys ?? D.DEFAULT_RATE_LIMIT_MAX_KEYS,
  };
}

function compileFault(f: RouteDocument['fault']): FaultPolicy | undefined {
  if (f === undefined) return undefined;
  return {
    delay: f.delay === undefined ? undefined : { durationMs: durationMs(f.delay.duration, 0), percent: f.delay.percent },
    abort: f.abort === undefined ? undefined : { status: f.abort.status ?? D.DEFAULT_FAULT_ABORT_STATUS, percent: f.abort.percent },
    header: f.header?.toLowerCase(),
  };
}

function compileAuth(r: RouteDocument, resolvePath: (p: string) => string, routeFiles: RouteFiles): AuthPolicy | undefined {
  const a = r.auth;
  if (a === undefined) return undefined;
  if (a.jwt !== undefined) {
    const j = a.jwt;
    const jwksFile = j.jwks.file === undefined ? undefined : resolvePath(j.jwks.file);
    return {
      kind: 'jwt',
      issuer: j.issuer,
      audiences: j.audiences,
      jwksUrl: j.jwks.url,
      jwksFile,
      jwksKeys: jwksFile === undefined ? undefined : (fileContents(routeFiles, jwksFile) as JsonWebKey[]),
      jwksRefreshIntervalMs: durationMs(j.jwks.refreshInterval, D.DEFAULT_JWKS_REFRESH_INTERVAL_MS),
      jwksTimeoutMs: durationMs(j.jwks.timeout, D.DEFAULT_JWKS_TIMEOUT_MS),
      algorithms: j.algorithms ?? JWT_ALGORITHMS,
      clockSkewSeconds: Math.floor(durationMs(j.clockSkew, D.DEFAULT_JWT_CLOCK_SKEW_MS) / 1000),
      claimsToHeaders: Object.entries(j.claimsToHeaders ?? {}).map(([claim, header]) => [claim, header.toLowerCase()] as const),
      forwardToken: j.forwardToken ?? D.DEFAULT_JWT_FORWARD_TOKEN,
    };
  }
  if (a.basic !== undefined) {
    const usersFile = resolvePath(a.basic.usersFile);
    return { kind: 'basic', usersFile, realm: a.basic.realm ?? r.name, users: fileContents(routeFiles, usersFile) as [string, string][] };
  }
  if (a.external !== undefined) {
    const e = a.external;
    return {
      kind: 'external',
      url: e.url,
      timeoutMs: durationMs(e.timeout, D.DEFAULT_EXTERNAL_AUTH_TIMEOUT_MS),
      pathPrefix: e.pathPrefix ?? '',
      requestHeaders: (e.requestHeaders ?? D.DEFAULT_EXTERNAL_AUTH_REQUEST_HEADERS).map((h) => h.toLowerCase()),
      responseHeaders: (e.responseHeaders ?? []).map((h) => h.toLowerCase()),
      failureMode: e.failureMode ?? D.DEFAULT_EXTERNAL_AUTH_FAILURE_MODE,
      cacheForMs: durationMs(e.cacheFor, D.DEFAULT_EXTERNAL_AUTH_CACHE_FOR_MS),
    };
  }
  throw new Error('auth without jwt, basic or external');
}

function fileContents(routeFiles: RouteFiles, file: string): unknown {
  if (!routeFiles.has(file)) throw new Error(`route file ${file} was not read at load`);
  return routeFiles.get(file);
}

function compileAccess(a: RouteDocument['access']): AccessRules | undefined {
  if (a === undefined) return undefined;
  return {
    allow: (a.allow ?? []).map(cidrBlock),
    deny: (a.deny ?? []).map(cidrBlock),
    clientCertSans: a.clientCertSans ?? [],
  };
}

function compileCors(c: RouteDocument['cors']): CorsPolicy | undefined {
  if (c === undefined) return undefined;
  return {
    allowOrigins: c.allowOrigins.map(originPattern),
    allowMethods: (c.allowMethods ?? D.DEFAULT_CORS_ALLOW_METHODS).map((m) => m.toUpperCase()),
    allowHeaders: (c.allowHeaders ?? []).map((h) => h.toLowerCase()),
    exposeHeaders: (c.exposeHeaders ?? []).map((h) => h.toLowerCase()),
    maxAgeSeconds: Math.floor(durationMs(c.maxAge, D.DEFAULT_CORS_MAX_AGE_MS) / 1000),
    allowCredentials: c.allowCredentials ?? D.DEFAULT_CORS_ALLOW_CREDENTIALS,
  };
}

function originPattern(text: string): OriginPattern {
  if (text === '*') return { kind: 'any' };
  if (text.startsWith('*.')) return { kind: 'subdomain', suffix: text.slice(1).toLowerCase() };
  return { kind: 'exact', origin: text.toLowerCase() };
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
    dnsRefreshMs: durationMs(c.dnsRefresh, D.DEFAULT_DNS_REFRESH_MS),
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
    loadBalancer: c.loadBalancer ?? D.DEFAULT_LOAD_BALANCER,
    hashOn: (c.loadBalancer ?? D.DEFAULT_LOAD_BALANCER) === 'hash' ? requestKey(c.hashOn ?? D.DEFAULT_HASH_ON) : undefined,
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
