import type { ClusterRoute } from '../config/types';
import { BreakerInterceptor } from './breaker';
import { ConcurrencyInterceptor } from './concurrency';
import { DeadlineInterceptor } from './deadline';
import { FaultInterceptor } from './fault';
import { HostRewriteInterceptor } from './host-rewrite';
import type { Interceptor } from './interceptor';
import { ObserveInterceptor } from './observe';
import { MirrorInterceptor } from './mirror';
import { PoolTerminal } from './pool';
import { RateLimitInterceptor } from './rate-limit';
import { RetryInterceptor } from './retry';

/**
 * A route's dispatch chain, compiled once per route:
 *
 *   observe → [rateLimit] → deadline → [fault] → [mirror] → breaker → concurrency → [retry] → [hostRewrite] → terminal (pool)
 *
 * A policy the route does not configure is not in its chain (retry, when `retry.attempts` is
 * 0). The rate limit refuses before the clock is armed; the fault's delay runs on the clock;
 * both refuse above the breaker, so that their refusals are not counted against the app.
 * The named steps are the ones a request's timers and callbacks come back to.
 */
export interface RouteChain {
  readonly head: Interceptor;
  readonly observe: ObserveInterceptor;
  readonly deadline: DeadlineInterceptor;
  readonly concurrency: ConcurrencyInterceptor;
  readonly retry: RetryInterceptor | undefined;
  readonly fault: FaultInterceptor | undefined;
  readonly mirror: MirrorInterceptor | undefined;
  readonly terminal: PoolTerminal;
}

/**
 * Routes are deep-frozen parts of one loaded config (config/load.ts), so a chain compiled for
 * a route object stays right for it; a reload makes new route objects, hence new chains, and
 * the old ones go with their config.
 */
const chains = new WeakMap<ClusterRoute, RouteChain>();

export function chainFor(route: ClusterRoute): RouteChain {
  let chain = chains.get(route);
  if (chain === undefined) {
    chain = compileChain(route);
    chains.set(route, chain);
  }
  return chain;
}

export function compileChain(route: ClusterRoute): RouteChain {
  const observe = new ObserveInterceptor();
  const deadline = new DeadlineInterceptor(route.timeoutMs, route.retry.perTryTimeoutMs);
  const concurrency = new ConcurrencyInterceptor();
  const retry = route.retry.attempts > 0 ? new RetryInterceptor(route.retry) : undefined;
  const terminal = new PoolTerminal();
  const fault = route.fault === undefined ? undefined : new FaultInterceptor(route.fault);
  const steps: Interceptor[] = [observe];
  if (route.rateLimit !== undefined) steps.push(new RateLimitInterceptor(route.rateLimit, route.name));
  steps.push(deadline);
  if (fault !== undefined) steps.push(fault);
  const mirror = route.mirror === undefined ? undefined : new MirrorInterceptor(route.mirror);
  if (mirror !== undefined) steps.push(mirror);
  steps.push(new BreakerInterceptor(), concurrency);
  if (retry !== undefined) steps.push(retry);
  if (route.hostRewrite !== undefined) steps.push(new HostRewriteInterceptor(route.hostRewrite));
  steps.push(terminal);
  for (let i = 0; i < steps.length; i++) {
    steps[i].up = steps[i - 1];
    steps[i].next = steps[i + 1];
  }
  return { head: observe, observe, deadline, concurrency, retry, fault, mirror, terminal };
}
