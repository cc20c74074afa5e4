import { randomFillSync } from 'node:crypto';
import type { IdGenerator } from '@opentelemetry/sdk-trace';

/** Random bytes drawn from the CSPRNG at once; ids are cut from them until they run out. */
const POOL_BYTES = 4096;

/**
 * Trace and span ids from a pool of cryptographically random bytes: one randomFillSync per
 * 4 KiB instead of several Math.random calls per id, so ids are cheap (every request makes
 * two or three, sampled or not) and not predictable from earlier ones.
 */
export class PooledIdGenerator implements IdGenerator {
  private readonly pool = Buffer.allocUnsafe(POOL_BYTES);
  private offset = POOL_BYTES;

  generateTraceId = (): string => this.next(16);
  generateSpanId = (): string => this.next(8);

  private next(bytes: number): string {
    if (this.offset + bytes > POOL_BYTES) {
      randomFillSync(this.pool);
      this.offset = 0;
    }
    const start = this.offset;
    this.offset += bytes;
    // An all-zero id is invalid in W3C trace context; redraw (about once in 2^64 ids).
    for (let i = start; i < start + bytes; i++) if (this.pool[i] !== 0) return this.pool.toString('hex', start, start + bytes);
    return this.next(bytes);
  }
}
