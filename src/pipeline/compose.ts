import type { ClusterRoute } from '../config/types';
import { AccessInterceptor } from './access';
import { AuthInterceptor } from './auth';
import { authenticatorOf } from '../auth/authenticator';
import { BreakerInterceptor } from './breaker';
import { CompressionInterceptor } from './compression';
import { CorsInterceptor } from './cors';
import { ConcurrencyInterceptor } from './concurrency';
import { DeadlineInterceptor } from './deadline';
import { FaultInterceptor } from './fault';
import { HostRewriteInterceptor } from './host-rewrite';
import type { Interceptor } from './interceptor';
import { ObserveInterceptor } from './observe';
import { MirrorInterceptor } from './mirror';
import { PoolTerminal } from './pool';
import { RateLimitInterceptor, RouteRateLimit } from './rate-limit';
import { RecordInterceptor } from './record';
import { RetryInterceptor } from './retry';
import { TunnelObserveInterceptor } from './tunnel-observe';
import { TunnelTerminal } from './tunnel-terminal';

/**
 * A route's two dispatch chains, compiled once per route: one for its HTTP requests
 * (Exchange), one for its WebSocket upgrades (Tunnel).
 *
 *   HTTP:   observe → [access] → [rateLimit] → [cors] → [auth] → [compression] → deadline → [fault]
 *             → [mirror] → breaker → concurrency → [retry] → [host rewrite] → [record] → pool
 *   tunnel: tunnel-observe → [rateLimit] → deadline → breaker → concurrency → [retry]
 *             → [host rewrite] → tunnel-terminal
 *
 * A policy the route does not configure is not in its chains (retry, when `retry.attempts` is
 * 0; record, when `admin.recorder` is false; the others, when the route has no such section).
 * Policies that refuse before any attempt (access, rate limit, cors, auth, fault abort) sit
 * above the breaker, so that their refusals are not counted against the app, and all but the
 * fault above the deadline's clock. The tunnel chain holds only the policies a tunnel uses:
 * CORS, compression, fault, mirror and the flight recorder mean nothing for it, and its access
 * rules and authentication are checked when the upgrade is routed (listener/upgrade-handler.ts,
 * with the same rules and authenticator object). Both chains of a route share its rate-limit
 * buckets: an upgrade takes a token like a request. The named steps are the ones a request's
 * timers and callbacks come back to.
 */
export interface PolicySteps {
  readonly deadline: DeadlineInterceptor;
  readonly concurrency: ConcurrencyInterceptor;
  readonly retry: RetryInterceptor | undefined;
}

export interface HttpChain extends PolicySteps {
  /** The client's side of the exchange: the chain's first step. */
  readonly head: ObserveInterceptor;
  /** The attempts on the cluster's pools: the chain's last step. */
  readonly terminal: PoolTerminal;
  readonly fault: FaultInterceptor | undefined;
  readonly mirror: MirrorInterceptor | undefined;
}

export interface TunnelChain extends PolicySteps {
  /** The client's socket: the chain's first step. */
  readonly head: TunnelObserveInterceptor;
  /** The handshake attempts: the chain's last step. */
  readonly terminal: TunnelTerminal;
}

export interface RouteChains {
  readonly http: HttpChain;
  readonly tunnel: TunnelChain;
}

/**
 * Routes are deep-frozen parts of one loaded config (config/load.ts), so chains compiled for
 * a route object stay right for it; a reload makes new route objects, hence new chains, and
 * the old ones go with their config.
 */
const chains = new WeakMap<ClusterRoute, RouteChains>();

/**
 * `recording`: the config's `admin.recorder` is on (the same for every route of one config;
 * both entries pass it, since whichever kind comes first compiles both chains).
 */
export function chainFor(route: ClusterRoute, recording = false): RouteChains {
  let compiled = chains.get(route);
  if (compiled === undefined) {
    compiled = compileChains(route, recording);
    chains.set(route, compiled);
  }
  return compiled;
}

export function compileChains(route: ClusterRoute, recording = false): RouteChains {
  const rateLimit = route.rateLimit === undefined ? undefined : new RouteRateLimit(route.rateLimit, route.name);
  return { http: compileHttpChain(route, recording, rateLimit), tunnel: compileTunnelChain(route, rateLimit) };
}

function compileHttpChain(route: ClusterRoute, recording: boolean, rateLimit: RouteRateLimit | undefined): HttpChain {
  const head = new ObserveInterceptor();
  const terminal = new PoolTerminal();
  const deadline = new DeadlineInterceptor(route.timeoutMs, route.retry.perTryTimeoutMs);
  const concurrency = new ConcurrencyInterceptor();
  const retry = route.retry.attempts > 0 ? new RetryInterceptor(route.retry) : undefined;
  const fault = route.fault === undefined ? undefined : new FaultInterceptor(route.fault);
  const mirror = route.mirror === undefined ? undefined : new MirrorInterceptor(route.mirror);
  const steps: Interceptor[] = [head];
  // Cheapest refusals first: the address rules, then the rate limit (before any token is
  // verified or any auth service asked), then CORS (a preflight carries no credentials, and an
  // auth refusal gets the CORS headers), then authentication.
  if (route.access !== undefined) steps.push(new AccessInterceptor(route.access));
  if (rateLimit !== undefined) steps.push(new RateLimitInterceptor(rateLimit));
  if (route.cors !== undefined) steps.push(new CorsInterceptor(route.cors));
  const authenticator = authenticatorOf(route);
  if (authenticator !== undefined) steps.push(new AuthInterceptor(authenticator));
  if (route.compression !== undefined) steps.push(new CompressionInterceptor(route.compression));
  steps.push(deadline);
  if (fault !== undefined) steps.push(fault);
  if (mirror !== undefined) steps.push(mirror);
  steps.push(new BreakerInterceptor(), concurrency);
  if (retry !== undefined) steps.push(retry);
  if (route.hostRewrite !== undefined) steps.push(new HostRewriteInterceptor(route.hostRewrite));
  if (recording) steps.push(new RecordInterceptor());
  steps.push(terminal);
  link(steps);
  return { head, terminal, deadline, concurrency, retry, fault, mirror };
}

function compileTunnelChain(route: ClusterRoute, rateLimit: RouteRateLimit | undefined): TunnelChain {
  const head = new TunnelObserveInterceptor();
  const terminal = new TunnelTerminal();
  const deadline = new DeadlineInterceptor(route.timeoutMs, route.retry.perTryTimeoutMs);
  const concurrency = new ConcurrencyInterceptor();
  const retry = route.retry.attempts > 0 ? new RetryInterceptor(route.retry) : undefined;
  const steps: Interceptor[] = [head];
  if (rateLimit !== undefined) steps.push(new RateLimitInterceptor(rateLimit));
  steps.push(deadline, new BreakerInterceptor(), concurrency);
  if (retry !== undefined) steps.push(retry);
  if (route.hostRewrite !== undefined) steps.push(new HostRewriteInterceptor(route.hostRewrite));
  steps.push(terminal);
  link(steps);
  return { head, terminal, deadline, concurrency, retry };
}

function link(steps: readonly Interceptor[]): void {
  for (let i = 0; i < steps.length; i++) {
    steps[i].up = steps[i - 1];
    steps[i].next = steps[i + 1];
  }
}
