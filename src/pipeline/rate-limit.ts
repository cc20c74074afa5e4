import type { RateLimitPolicy } from '../config/types';
import { KeyedBuckets, msUntilToken, newBucket, takeToken, type BucketShape, type TokenBucket } from '../policy/token-bucket';
import type { ChainContext } from './context';
import { workerGroupSize } from '../core/worker-group-size';
import { Interceptor } from './interceptor';
import { requestKeyValue } from './request-key';

/**
 * `routes[].rateLimit` (only in the chain of a route that sets it): one token per request from
 * the bucket of its key, or 429 RATE_LIMITED with Retry-After and the IETF RateLimit-Policy /
 * RateLimit headers, before anything else is spent on it (it sits above the deadline's clock
 * and the breaker: a refusal arms no timer and counts nothing against the app).
 *
 * The buckets belong to this step, so to the route object: a reload starts them full again.
 */
export class RateLimitInterceptor extends Interceptor {
  private readonly shape: BucketShape;
  /** `key: route`: the route's one bucket. */
  private readonly routeBucket: TokenBucket | undefined;
  private readonly keyed: KeyedBuckets | undefined;
  private evictionsCounted = 0;
  /** The RateLimit-Policy value: quota `q` per window `w` (whole seconds, rounded up). */
  private readonly policyHeader: string;

  constructor(
    private readonly policy: RateLimitPolicy,
    private readonly routeName: string,
  ) {
    super();
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

  dispatch(x: ChainContext): void {
    const now = performance.now();
    const bucket = this.routeBucket ?? this.bucketOf(x, now);
    if (takeToken(bucket, this.shape, now)) {
      this.next!.dispatch(x);
      return;
    }
    const waitS = Math.max(1, Math.ceil(msUntilToken(bucket, this.shape) / 1000));
    x.rateLimitHeaders = ['retry-after', String(waitS), 'ratelimit-policy', this.policyHeader, 'ratelimit', `"${this.routeName}";r=0;t=${waitS}`];
    x.services.metrics.rateLimited.labels(x.listener.name, x.route.name).inc();
    this.up!.onRefused(x, 'RATE_LIMITED', `route ${x.route.name} allows ${this.policy.requests} requests per ${this.policy.perMs}ms (burst ${this.policy.burst}) per ${this.policy.key.kind}; retry in ${waitS}s`);
  }

  private bucketOf(x: ChainContext, now: number): TokenBucket {
    const keyed = this.keyed!;
    const bucket = keyed.bucketFor(requestKeyValue(x, this.policy.key), now);
    if (keyed.evictions !== this.evictionsCounted) {
      x.services.metrics.rateLimitEvictions.labels(x.listener.name, x.route.name).inc(keyed.evictions - this.evictionsCounted);
      this.evictionsCounted = keyed.evictions;
    }
    return bucket;
  }
}
