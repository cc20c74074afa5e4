import type { AuthPolicy, ClusterRoute, ListenerConfig, OriginPattern, RequestKey, RouteConfig, RouteMatch, SidecarConfig } from '../config/types';
import { asksWebSocketUpgrade } from '../core/header-list';
import { normalizeAuthority } from '../proxy/authority';
import { normalizePath, splitTarget } from '../core/path';
import { VALID_HOST } from '../proxy/request-guard';
import { hostMatches, matches, rewritePath, type RoutableRequest } from './route-table';

/**
 * `sidecar explain` and `GET /explain`: which listener and route a request would take, why
 * each earlier route did not match, the policies the chosen route applies and where the
 * request would go. Pure: the live state (breaker, budget) comes in through `ClusterLiveState`.
 */

export interface ExplainInput {
  readonly method: string;
  /** `/path?query` or an absolute `http(s)://host[:port]/path?query`. */
  readonly url: string;
  /** `name: value` pairs as given (`-H`); names are compared lower-case. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
}

/** What the running sidecar knows of a cluster now; undefined when explaining a file offline. */
export interface ClusterLiveState {
  readonly breaker: string;
  readonly retryBudgetAvailable: number;
  readonly healthyEndpoints: number;
}

export type LiveStateLookup = (cluster: string) => ClusterLiveState | undefined;

export interface RouteMiss {
  readonly route: string;
  /** Each criterion of the route's match the request fails, e.g. `path: /api is not a prefix of /web`. */
  readonly reasons: readonly string[];
}

export interface RoutePolicies {
  /**
   * The route's chain the request goes down: `tunnel` for a WebSocket upgrade (a GET whose
   * Upgrade header lists websocket), which holds no cors, compression, fault or mirror step
   * (those are null then; access and auth are checked when the upgrade is routed).
   */
  readonly chain: 'http' | 'tunnel';
  readonly deadline: string;
  readonly maxRequestBodyBytes: number;
  /** null: the route does not retry. */
  readonly retry: {
        readonly attempts: number;
        readonly on: readonly string[];
        readonly statusCodes: readonly number[];
        readonly perTryTimeout: string | null;
        readonly backoff: string;
        /** Whether this request's method may be retried at all (retry.methods, idempotencyKey). */
        readonly methodRetried: boolean;
      } | null;
  readonly circuitBreaker: {
    readonly state: string;
    readonly errorThresholdPercentage: number;
    readonly volumeThreshold: number;
    readonly maxConcurrentRequests: number;
    readonly maxPendingRequests: number;
  };
  readonly retryBudget: { readonly ratio: number; readonly minPerSecond: number; readonly available: number | null };
  readonly healthyEndpoints: number | null;
  readonly requestHeaders: { readonly add: readonly string[]; readonly remove: readonly string[] };
  /** How the cluster picks an endpoint for each attempt. */
  readonly loadBalancer: string;
  /** The route's other policies, in the order the chain applies them; null: not configured. */
  readonly access: { readonly allow: readonly string[]; readonly deny: readonly string[]; readonly clientCertSans: readonly string[] } | null;
  readonly rateLimit: { readonly requests: number; readonly per: string; readonly burst: number; readonly key: string } | null;
  readonly cors: { readonly allowOrigins: readonly string[]; readonly allowCredentials: boolean } | null;
  readonly auth: { readonly kind: 'jwt' | 'basic' | 'external'; readonly detail: string } | null;
  readonly compression: { readonly algorithms: readonly string[]; readonly minBytes: number } | null;
  readonly fault: { readonly delay: string | null; readonly abort: string | null; readonly header: string | null } | null;
  readonly mirror: { readonly cluster: string; readonly percent: number; readonly maxBodyBytes: number } | null;
  /** weightedClusters: the clusters and weights, and what keeps a client on one side. */
  readonly weightedClusters: { readonly clusters: readonly string[]; readonly hashOn: string | null } | null;
}

export interface ListenerExplanation {
  readonly listener: string;
  readonly route: string | null;
  readonly missed: readonly RouteMiss[];
}

export interface Explanation {
  readonly request: { readonly method: string; readonly path: string; readonly query: string; readonly host: string };
  readonly matched: boolean;
  readonly listener: string | null;
  readonly route: string | null;
  /** Every listener the request was tried against, in order (one when the URL's port names a listener). */
  readonly listeners: readonly ListenerExplanation[];
  readonly action: 'cluster' | 'directResponse' | 'redirect' | null;
  /** For a redirect route: its status and the parts of the URL it replaces. */
  readonly redirect?: { readonly status: number; readonly scheme?: string; readonly host?: string; readonly port?: number; readonly path?: string; readonly prefixRewrite?: string };
  readonly cluster: string | null;
  readonly directResponse: { readonly status: number } | null;
  /** The URL of each endpoint of the cluster with the path the app receives (after rewritePrefix). */
  readonly upstreamUrls: readonly string[];
  /** The Host header the app receives; null: the client's (none given). */
  readonly upstreamHost: string | null;
  readonly policies: RoutePolicies | null;
  /** Whether live state (breaker, budget) is known: true through the admin listener. */
  readonly live: boolean;
}

export class ExplainInputError extends Error {}

interface Target {
  readonly port: number | undefined;
  readonly path: string;
  readonly query: string;
  readonly host: string;
  readonly authority: string | undefined;
}

const ABSOLUTE_URL = /^(https?):\/\/([^/?#]*)(.*)$/i;

function parseTarget(url: string, hostHeader: string | undefined): Target {
  const absolute = ABSOLUTE_URL.exec(url);
  let rawAuthority = hostHeader;
  let target = url;
  if (absolute !== null) {
    rawAuthority = absolute[2];
    target = absolute[3] === '' ? '/' : absolute[3];
  }
  if (!target.startsWith('/')) throw new ExplainInputError(`the URL must be a path (/x) or an absolute http(s) URL, not ${JSON.stringify(url)}`);
  const { path: rawPath, query } = splitTarget(target);
  const normalized = normalizePath(rawPath);
  if (!normalized.ok) throw new ExplainInputError(`the path is refused before routing: ${normalized.reason}`);
  let host = '';
  let authority: string | undefined;
  let port: number | undefined;
  if (rawAuthority !== undefined && rawAuthority !== '') {
    const parsed = VALID_HOST.test(rawAuthority) ? normalizeAuthority(rawAuthority) : undefined;
    if (parsed === undefined) throw new ExplainInputError(`the host ${JSON.stringify(rawAuthority)} is not a valid host`);
    host = parsed.host;
    authority = parsed.authority;
    const colon = authority.lastIndexOf(':');
    if (colon > authority.lastIndexOf(']')) port = Number(authority.slice(colon + 1));
  }
  return { port, path: normalized.path, query, host, authority };
}

function headerMap(headers: ExplainInput['headers']): Record<string, string | string[]> {
  const map: Record<string, string | string[]> = {};
  for (const [name, value] of headers) {
    const key = name.toLowerCase();
    const existing = map[key];
    map[key] = existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value];
  }
  return map;
}

const ANY_PATH_CRITERIA = { methods: undefined, host: undefined, headers: [] } as const;

/** Every criterion of `match` that `request` fails; empty when the route matches. */
export function whyNot(match: RouteMatch, request: RoutableRequest): string[] {
  const reasons: string[] = [];
  if (!matches({ ...match, ...ANY_PATH_CRITERIA }, request)) {
    const caseNote = match.caseInsensitive ? ' (ignoring case)' : '';
    if (match.kind === 'path') reasons.push(`path: ${request.path} is not ${match.value}${caseNote}`);
    else if (match.kind === 'prefix') reasons.push(`path: ${request.path} does not start with ${match.value}${caseNote}`);
    else reasons.push(`path: ${request.path} does not match regex ${match.value}`);
  }
  if (match.methods !== undefined && !match.methods.has(request.method)) reasons.push(`method: ${request.method} is not one of ${[...match.methods].join(', ')}`);
  if (match.host !== undefined && !hostMatches(match.host, request.host)) reasons.push(`host: ${request.host === '' ? '(none)' : request.host} is not ${match.host}`);
  for (const [name, expected] of match.headers) {
    const actual = request.headers[name];
    const found = Array.isArray(actual) ? actual.includes(expected) : actual === expected;
    if (!found) reasons.push(`header ${name}: ${actual === undefined ? 'absent' : JSON.stringify(actual)}, the route wants ${JSON.stringify(expected)}`);
  }
  return reasons;
}

function explainListener(listener: ListenerConfig, request: RoutableRequest): { explanation: ListenerExplanation; route: RouteConfig | undefined } {
  const missed: RouteMiss[] = [];
  for (const route of listener.routes) {
    const reasons = whyNot(route.match, request);
    if (reasons.length === 0) return { explanation: { listener: listener.name, route: route.name, missed }, route };
    missed.push({ route: route.name, reasons });
  }
  return { explanation: { listener: listener.name, route: null, missed }, route: undefined };
}

export function explainRequest(config: SidecarConfig, input: ExplainInput, live: LiveStateLookup = () => undefined): Explanation {
  const method = input.method.toUpperCase();
  const headers = headerMap(input.headers);
  const hostHeader = headers.host;
  const target = parseTarget(input.url, Array.isArray(hostHeader) ? hostHeader[0] : hostHeader);
  const request: RoutableRequest = { method, path: target.path, host: target.host, headers };
  // A port that names a listener picks it; otherwise the request is tried on each listener.
  const byPort = config.listeners.filter((l) => l.port === target.port);
  const candidates = byPort.length > 0 ? byPort : config.listeners;
  const listeners: ListenerExplanation[] = [];
  let chosen: { listener: ListenerConfig; route: RouteConfig } | undefined;
  for (const listener of candidates) {
    const { explanation, route } = explainListener(listener, request);
    listeners.push(explanation);
    if (route !== undefined && chosen === undefined) chosen = { listener, route };
  }
  const base = {
    request: { method, path: target.path, query: target.query, host: target.host },
    listeners,
    live: false,
  };
  if (chosen === undefined) {
    return { ...base, matched: false, listener: null, route: null, action: null, cluster: null, directResponse: null, upstreamUrls: [], upstreamHost: null, policies: null };
  }
  const { listener, route } = chosen;
  if (route.action === 'directResponse') {
    return {
      ...base,
      matched: true,
      listener: listener.name,
      route: route.name,
      action: 'directResponse',
      cluster: null,
      directResponse: { status: route.directResponse.status },
      upstreamUrls: [],
      upstreamHost: null,
      policies: null,
    };
  }
  if (route.action === 'redirect') {
    return {
      ...base,
      matched: true,
      listener: listener.name,
      route: route.name,
      action: 'redirect',
      cluster: null,
      directResponse: null,
      redirect: route.redirect,
      upstreamUrls: [],
      upstreamHost: null,
      policies: null,
    };
  }
  const cluster = config.clusters.get(route.cluster);
  const state = live(route.cluster);
  const upstreamPath = (route.rewritePrefix !== undefined && route.match.kind === 'prefix' ? rewritePath(route.match.value, route.rewritePrefix, target.path) : target.path) + target.query;
  const endpoints = cluster?.endpoints ?? [];
  return {
    ...base,
    live: state !== undefined,
    matched: true,
    listener: listener.name,
    route: route.name,
    action: 'cluster',
    cluster: route.cluster,
    directResponse: null,
    upstreamUrls: endpoints.map((e) => e.url + upstreamPath),
    upstreamHost: upstreamHost(route, target.authority, endpoints[0]?.url),
    policies: cluster === undefined ? null : policiesOf(route, cluster, method, headers, state),
  };
}

function upstreamHost(route: ClusterRoute, clientAuthority: string | undefined, firstEndpoint: string | undefined): string | null {
  if (route.hostRewrite === undefined) return clientAuthority ?? null;
  if (route.hostRewrite !== 'auto') return route.hostRewrite;
  return firstEndpoint === undefined ? null : new URL(firstEndpoint).host;
}

function policiesOf(
  route: ClusterRoute,
  cluster: NonNullable<ReturnType<SidecarConfig['clusters']['get']>>,
  method: string,
  headers: Record<string, string | string[]>,
  state: ClusterLiveState | undefined,
): RoutePolicies {
  const retry = route.retry;
  const cb = cluster.circuitBreaker;
  const tunnel = asksWebSocketUpgrade(method, headers.upgrade);
  return {
    chain: tunnel ? 'tunnel' : 'http',
    deadline: `${route.timeoutMs}ms`,
    maxRequestBodyBytes: route.maxRequestBodyBytes,
    retry:
      retry.attempts === 0
        ? null
        : {
            attempts: retry.attempts,
            on: [...retry.on],
            statusCodes: [...retry.statusCodes],
            perTryTimeout: retry.perTryTimeoutMs === undefined ? null : `${retry.perTryTimeoutMs}ms`,
            backoff: `${retry.backoff.baseMs}ms..${retry.backoff.maxMs}ms`,
            methodRetried: retry.methods.has(method) || (retry.idempotencyKey && headers['idempotency-key'] !== undefined),
          },
    circuitBreaker: {
      state: state?.breaker ?? 'unknown (explained from a file: ask the admin listener for the live state)',
      errorThresholdPercentage: cb.errorThresholdPercentage,
      volumeThreshold: cb.volumeThreshold,
      maxConcurrentRequests: cb.maxConcurrentRequests,
      maxPendingRequests: cb.maxPendingRequests,
    },
    retryBudget: { ratio: cluster.retryBudget.ratio, minPerSecond: cluster.retryBudget.minPerSecond, available: state?.retryBudgetAvailable ?? null },
    healthyEndpoints: state?.healthyEndpoints ?? null,
    requestHeaders: { add: route.requestHeaders.add.map(([name, value]) => `${name}: ${value}`), remove: [...route.requestHeaders.remove] },
    loadBalancer: cluster.loadBalancer + (cluster.hashOn === undefined ? '' : ` on ${keyText(cluster.hashOn)}`),
    access: route.access === undefined ? null : { allow: route.access.allow.map((b) => b.text), deny: route.access.deny.map((b) => b.text), clientCertSans: [...route.access.clientCertSans] },
    rateLimit: route.rateLimit === undefined ? null : { requests: route.rateLimit.requests, per: `${route.rateLimit.perMs}ms`, burst: route.rateLimit.burst, key: keyText(route.rateLimit.key) },
    cors: tunnel || route.cors === undefined ? null : { allowOrigins: route.cors.allowOrigins.map(originText), allowCredentials: route.cors.allowCredentials },
    auth: route.auth === undefined ? null : { kind: route.auth.kind, detail: authText(route.auth) },
    compression: tunnel || route.compression === undefined ? null : { algorithms: [...route.compression.algorithms], minBytes: route.compression.minBytes },
    fault:
      tunnel || route.fault === undefined
        ? null
        : {
            delay: route.fault.delay === undefined ? null : `${route.fault.delay.durationMs}ms for ${route.fault.delay.percent}%`,
            abort: route.fault.abort === undefined ? null : `${route.fault.abort.status} for ${route.fault.abort.percent}%`,
            header: route.fault.header ?? null,
          },
    mirror: tunnel || route.mirror === undefined ? null : { cluster: route.mirror.cluster, percent: route.mirror.percent, maxBodyBytes: route.mirror.maxBodyBytes },
    weightedClusters:
      route.split === undefined
        ? null
        : { clusters: route.split.clusters.map((c) => `${c.cluster}=${c.weight}`), hashOn: route.split.hashOn === undefined ? null : keyText(route.split.hashOn) },
  };
}

function keyText(key: RequestKey): string {
  return key.kind === 'header' ? `header:${key.header}` : key.kind;
}

function originText(origin: OriginPattern): string {
  return origin.kind === 'exact' ? origin.origin : origin.kind === 'any' ? '*' : `*${origin.suffix}`;
}

function authText(auth: AuthPolicy): string {
  if (auth.kind === 'jwt') return `issuer ${auth.issuer}, audiences ${auth.audiences.join(', ')}`;
  if (auth.kind === 'basic') return `users from ${auth.usersFile}, realm ${auth.realm}`;
  return `asks ${auth.url}`;
}

/** `k: v` (as curl's -H) → [k, v]; the admin endpoint's `header=k:v` uses the same form. */
export function parseHeaderArgument(text: string): readonly [string, string] {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new ExplainInputError(`a header is "name: value", not ${JSON.stringify(text)}`);
  return [text.slice(0, colon).trim(), text.slice(colon + 1).trim()];
}
