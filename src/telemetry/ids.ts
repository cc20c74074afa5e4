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
  /** A trace id already drawn (and sampled) by the caller, for the next root span. */
  private presetTraceId: string | undefined;

  generateTraceId = (): string => {
    const preset = this.presetTraceId;
    if (preset === undefined) return this.next(16);
    this.presetTraceId = undefined;
    return preset;
  };
  generateSpanId = (): string => this.next(8);

  /**
   * The next `generateTraceId` returns `traceId`. Used when a trace id was drawn to ask the
   * sampler before any span exists: the SDK must then start its root span with that very id,
   * or the sampler would be asked again for another id (ratio sampling would become ratio²).
   * The caller starts that span synchronously right after, so no other span takes the id.
   */
  useForNextTrace(traceId: string): void {
    this.presetTraceId = traceId;
  }

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
