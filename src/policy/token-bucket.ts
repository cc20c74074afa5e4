/**
 * Local rate limiting: token buckets, and a bounded set of them keyed by client, header value
 * or route. Pure state and decisions: the caller passes the time, so tests control it.
 *
 * A bucket holds at most `capacity` tokens (requests + burst) and gains `refillPerMs` tokens
 * per millisecond (requests / per); a request takes one whole token or is refused. A new
 * bucket starts full.
 */

export interface BucketShape {
  /** Tokens a full bucket holds: the requests a quiet client may send at once. */
  readonly capacity: number;
  /** Tokens gained per millisecond. */
  readonly refillPerMs: number;
}

export interface TokenBucket {
  tokens: number;
  /** performance.now() of the last refill. */
  updatedAt: number;
}

export function newBucket(shape: BucketShape, now: number): TokenBucket {
  return { tokens: shape.capacity, updatedAt: now };
}

/** Refills the bucket for the time elapsed, then takes one token if there is a whole one. */
export function takeToken(bucket: TokenBucket, shape: BucketShape, now: number): boolean {
  const elapsed = now - bucket.updatedAt;
  if (elapsed > 0) {
    bucket.tokens = Math.min(shape.capacity, bucket.tokens + elapsed * shape.refillPerMs);
    bucket.updatedAt = now;
  }
  if (bucket.tokens < 1) return false;
  bucket.tokens -= 1;
  return true;
}

/** Whole tokens left: the requests that would pass right now. */
export function remainingTokens(bucket: TokenBucket): number {
  return Math.floor(bucket.tokens);
}

/** Time until the bucket holds a whole token again, ms (0 when it does). */
export function msUntilToken(bucket: TokenBucket, shape: BucketShape): number {
  return bucket.tokens >= 1 ? 0 : (1 - bucket.tokens) / shape.refillPerMs;
}

/**
 * Buckets by key, at most `maxKeys` of them: when a new key would exceed the bound, the key
 * used least recently is forgotten (its client starts again with a full bucket, the price of
 * bounded memory: a flood of distinct keys cannot grow the map). Map iteration order is
 * insertion order, and a used key is re-inserted, so the first key is the least recent.
 */
export class KeyedBuckets {
  private readonly buckets = new Map<string, TokenBucket>();
  /** Keys forgotten to stay within maxKeys, since creation. */
  evictions = 0;

  constructor(
    private readonly shape: BucketShape,
    private readonly maxKeys: number,
  ) {}

  get size(): number {
    return this.buckets.size;
  }

  /** The key's bucket (a new, full one for a new key), marked as the most recently used. */
  bucketFor(key: string, now: number): TokenBucket {
    const buckets = this.buckets;
    let bucket = buckets.get(key);
    if (bucket === undefined) {
      if (buckets.size >= this.maxKeys) {
        const oldest = buckets.keys().next();
        if (oldest.done !== true) buckets.delete(oldest.value);
        this.evictions++;
      }
      bucket = newBucket(this.shape, now);
    } else {
      buckets.delete(key);
    }
    buckets.set(key, bucket);
    return bucket;
  }
}
