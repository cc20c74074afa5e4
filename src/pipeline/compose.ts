import type { ClusterRoute } from '../config/types';
import { BreakerInterceptor } from './breaker';
import { ConcurrencyInterceptor } from './concurrency';
import { DeadlineInterceptor } from './deadline';
import { HostRewriteInterceptor } from './host-rewrite';
import type { Interceptor } from './interceptor';
import { ObserveInterceptor } from './observe';
import { PoolTerminal } from './pool';
import { RecordInterceptor } from './record';
import { RetryInterceptor } from './retry';

/**
 * A route's dispatch chain, compiled once per route:
 *
 *   observe → deadline → breaker → concurrency → [retry] → [host rewrite] → [record] → terminal (pool)
 *
 * A policy the route does not configure is not in its chain (retry, when `retry.attempts` is
 * 0; record, when `admin.recorder` is false). The named steps are the ones a request's timers and callbacks come back to.
 */
export interface RouteChain {
  readonly head: Interceptor;
  readonly observe: ObserveInterceptor;
  readonly deadline: DeadlineInterceptor;
  readonly concurrency: ConcurrencyInterceptor;
  readonly retry: RetryInterceptor | undefined;
  readonly terminal: PoolTerminal;
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
  const observe = new ObserveInterceptor();
  const deadline = new DeadlineInterceptor(route.timeoutMs, route.retry.perTryTimeoutMs);
  const concurrency = new ConcurrencyInterceptor();
  const retry = route.retry.attempts > 0 ? new RetryInterceptor(route.retry) : undefined;
  const terminal = new PoolTerminal();
  const steps: Interceptor[] = [observe, deadline, new BreakerInterceptor(), concurrency];
  if (retry !== undefined) steps.push(retry);
  if (route.hostRewrite !== undefined) steps.push(new HostRewriteInterceptor(route.hostRewrite));
  if (recording) steps.push(new RecordInterceptor());
  steps.push(terminal);
  for (let i = 0; i < steps.length; i++) {
    steps[i].up = steps[i - 1];
    steps[i].next = steps[i + 1];
  }
  return { head: observe, observe, deadline, concurrency, retry, terminal };
}
