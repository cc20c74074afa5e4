import type { ClusterRoute } from '../config/types';
import { AccessInterceptor } from './access';
import { AuthInterceptor } from './auth';
import { authenticatorOf } from '../auth/authenticator';
import { BreakerInterceptor } from './breaker';
import { CompressionInterceptor } from './compression';
import { CorsInterceptor } from './cors';
import { ConcurrencyInterceptor } from './concurrency';
import { DeadlineInterceptor } from './deadline';
import { HostRewriteInterceptor } from './host-rewrite';
import type { Interceptor } from './interceptor';
import { ObserveInterceptor } from './observe';
import { PoolTerminal } from './pool';
import { RetryInterceptor } from './retry';

/**
 * A route's dispatch chain, compiled once per route:
 *
 *   observe → [access] → [cors] → [auth] → [compression] → deadline → breaker → concurrency → [retry] → [hostRewrite] → terminal (pool)
 *
 * A policy the route does not configure is not in its chain (retry, when `retry.attempts` is
 * 0; access, cors, auth and compression, when the route has no such section). The named steps are the ones a request's timers and callbacks come back to.
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
  const steps: Interceptor[] = [observe];
  // Edge policies refuse before any attempt: above the deadline (their time is not the
  // app's) and the breaker (their refusals say nothing of the app).
  if (route.access !== undefined) steps.push(new AccessInterceptor(route.access));
  if (route.cors !== undefined) steps.push(new CorsInterceptor(route.cors));
  // Below cors: a preflight carries no credentials, and a refusal gets the CORS headers.
  const authenticator = authenticatorOf(route);
  if (authenticator !== undefined) steps.push(new AuthInterceptor(authenticator));
  if (route.compression !== undefined) steps.push(new CompressionInterceptor(route.compression));
  steps.push(deadline, new BreakerInterceptor(), concurrency);
  if (retry !== undefined) steps.push(retry);
  if (route.hostRewrite !== undefined) steps.push(new HostRewriteInterceptor(route.hostRewrite));
  steps.push(terminal);
  for (let i = 0; i < steps.length; i++) {
    steps[i].up = steps[i - 1];
    steps[i].next = steps[i + 1];
  }
  return { head: observe, observe, deadline, concurrency, retry, terminal };
}
