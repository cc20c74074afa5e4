import type { RateLimitPolicy } from '../config/types';
import { KeyedBuckets, msUntilToken, newBucket, takeToken, type BucketShape, type TokenBucket } from '../policy/token-bucket';
import type { ChainContext } from './context';
import { workerGroupSize } from '../core/worker-group-size';
import { Interceptor } from './interceptor';
import { requestKeyValue } from './request-key';

/**
 * `routes[].rateLimit` (only in the chains of a route that sets it): one token per request
 * (or WebSocket upgrade) from the bucket of its key, or 429 RATE_LIMITED with Retry-After and
 * the IETF RateLimit-Policy / RateLimit headers, before anything else is spent on it (it sits
 * above the deadline's clock and the breaker: a refusal arms no timer and counts nothing
 * against the app).
 */
export class RateLimitInterceptor extends Interceptor {
  constructor(readonly limit: RouteRateLimit) {
    super();
  }

  dispatch(x: ChainContext): void {
    const limit = this.limit;
    const now = performance.now();
    const bucket = limit.routeBucket ?? limit.bucketOf(x, now);
    if (takeToken(bucket, limit.shape, now)) {
      this.next!.dispatch(x);
      return;
    }
    const waitS = Math.max(1, Math.ceil(msUntilToken(bucket, limit.shape) / 1000));
    x.rateLimitHeaders = ['retry-after', String(waitS), 'ratelimit-policy', limit.policyHeader, 'ratelimit', `"${limit.routeName}";r=0;t=${waitS}`];
    x.services.metrics.rateLimited.labels(x.listener.name, x.route.name).inc();
    const policy = limit.policy;
    this.up!.onRefused(x, 'RATE_LIMITED', `route ${x.route.name} allows ${policy.requests} requests per ${policy.perMs}ms (burst ${policy.burst}) per ${policy.key.kind}; retry in ${waitS}s`);
  }
}

/**
 * The buckets of one route, shared by its HTTP and tunnel chains. They belong to the route
 * object: a reload starts them full again.
 */
export class RouteRateLimit {
  readonly shape: BucketShape;
  /** `key: route`: the route's one bucket. */
  readonly routeBucket: TokenBucket | undefined;
  private readonly keyed: KeyedBuckets | undefined;
  private evictionsCounted = 0;
  /** The RateLimit-Policy value: quota `q` per window `w` (whole seconds, rounded up). */
  readonly policyHeader: string;

  constructor(
    readonly policy: RateLimitPolicy,
    readonly routeName: string,
  ) {
    // Each worker of a group holds its own buckets with 1/N of the limit, so the group together
    // passes at most the limit (README, Rate limiting). One process never holds less than one
    // token, or a small limit would pass nothing.
    const share = 1 / workerGroupSize();
    this.shape = {
      capacity: Math.max(1, (policy.requests + policy.burst) * share),
      refillPerMs: (policy.requests * share) / policy.perMs,
    };
    if (policy.key.kind === 'route') this.routeBucket = newBucket(this.shape, performance.now());
    else this.keyed = new KeyedBuckets(this.shape, policy.maxKeys);
    this.policyHeader = `"${routeName}";q=${policy.requests};w=${Math.max(1, Math.ceil(policy.perMs / 1000))}`;
  }

  bucketOf(x: ChainContext, now: number): TokenBucket {
    const keyed = this.keyed!;
    const bucket = keyed.bucketFor(requestKeyValue(x, this.policy.key), now);
    if (keyed.evictions !== this.evictionsCounted) {
      x.services.metrics.rateLimitEvictions.labels(x.listener.name, x.route.name).inc(keyed.evictions - this.evictionsCounted);
      this.evictionsCounted = keyed.evictions;
    }
    return bucket;
  }
}
