import type { ClusterRoute } from '../config/types';
import { AccessInterceptor } from './access';
import { AuthInterceptor } from './auth';
import { authenticatorOf } from '../auth/authenticator';
import { BreakerInterceptor } from './breaker';
import { CompressionInterceptor } from './compression';
import { CorsInterceptor } from './cors';
import { ConcurrencyInterceptor } from './concurrency';
import type { ChainEnds } from './context';
import { DeadlineInterceptor } from './deadline';
import { FaultInterceptor } from './fault';
import { HostRewriteInterceptor } from './host-rewrite';
import type { Interceptor } from './interceptor';
import { ObserveInterceptor } from './observe';
import { MirrorInterceptor } from './mirror';
import { PoolTerminal } from './pool';
import { HeadPort, TerminalPort } from './ports';
import { RateLimitInterceptor } from './rate-limit';
import { RecordInterceptor } from './record';
import { RetryInterceptor } from './retry';
import { TunnelObserveInterceptor } from './tunnel-observe';
import { TunnelTerminal } from './tunnel-terminal';

/**
 * A route's dispatch chain, compiled once per route:
 *
 *   head → [access] → [rateLimit] → [cors] → [auth] → [compression] → deadline → [fault] → [mirror]
 *        → breaker → concurrency → [retry] → [host rewrite] → [record] → terminal
 *
 * The policy steps between the two ports are the route's, shared by every exchange of the
 * route whatever its kind. The ports pass each event on to the exchange's own ends: observe
 * and the pool for an HTTP request (Exchange), the tunnel's client side and the tunnel
 * terminal for a WebSocket upgrade (Tunnel). A policy the route does not configure is not in
 * its chain (retry, when `retry.attempts` is 0; record, when `admin.recorder` is false; the
 * others, when the route has no such section). Policies that refuse before any attempt
 * (access, rate limit, cors, auth, fault abort) sit above the breaker, so that their refusals
 * are not counted against the app, and all but the fault above the deadline's clock. The
 * edge steps (access, cors, auth, compression), fault, mirror and record act on HTTP requests
 * only: a tunnel passes through them (its access and authentication are checked when the
 * upgrade is routed, listener/upgrade-handler.ts). The named steps are the ones a request's
 * timers and callbacks come back to.
 */
export interface RouteChain {
  /** The port above the policies (the client's side of the exchange at hand). */
  readonly head: Interceptor;
  /** The port below the policies (the terminal of the exchange at hand). */
  readonly terminal: Interceptor;
  readonly deadline: DeadlineInterceptor;
  readonly concurrency: ConcurrencyInterceptor;
  readonly retry: RetryInterceptor | undefined;
  readonly fault: FaultInterceptor | undefined;
  readonly mirror: MirrorInterceptor | undefined;
  readonly http: HttpEnds;
  readonly tunnel: TunnelEnds;
}

export interface HttpEnds extends ChainEnds {
  readonly head: ObserveInterceptor;
  readonly terminal: PoolTerminal;
}

export interface TunnelEnds extends ChainEnds {
  readonly head: TunnelObserveInterceptor;
  readonly terminal: TunnelTerminal;
}

/**
 * Routes are deep-frozen parts of one loaded config (config/load.ts), so a chain compiled for
 * a route object stays right for it; a reload makes new route objects, hence new chains, and
 * the old ones go with their config.
 */
const chains = new WeakMap<ClusterRoute, RouteChain>();

/** `recording`: the config's `admin.recorder` is on (the same for every route of one config). */
export function chainFor(route: ClusterRoute, recording = false): RouteChain {
  let chain = chains.get(route);
  if (chain === undefined) {
    chain = compileChain(route, recording);
    chains.set(route, chain);
  }
  return chain;
}

export function compileChain(route: ClusterRoute, recording = false): RouteChain {
  const head = new HeadPort();
  const terminal = new TerminalPort();
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
  if (route.rateLimit !== undefined) steps.push(new RateLimitInterceptor(route.rateLimit, route.name));
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
  for (let i = 0; i < steps.length; i++) {
    steps[i].up = steps[i - 1];
    steps[i].next = steps[i + 1];
  }
  // Each kind's ends talk to the policies next to the ports, as if they stood in their place.
  const top = steps[1];
  const bottom = steps[steps.length - 2];
  const http = { head: new ObserveInterceptor(), terminal: new PoolTerminal() };
  const tunnel = { head: new TunnelObserveInterceptor(), terminal: new TunnelTerminal() };
  for (const ends of [http, tunnel]) {
    ends.head.next = top;
    ends.terminal.up = bottom;
  }
  return { head, terminal, deadline, concurrency, retry, fault, mirror, http, tunnel };
}
