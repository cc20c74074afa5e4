import type { ChainContext } from './context';
import { Interceptor } from './interceptor';

/**
 * The cluster's concurrency limit (policy/concurrency-limit.ts): a request holds one slot from
 * admission to the end of its exchange, retries included; beyond the limit it waits for a slot
 * (first come, first served) or, past `maxPendingRequests`, is refused with 503 OVERLOADED.
 * The slot is taken here and given back in one place, onEnd.
 */
export class ConcurrencyInterceptor extends Interceptor {
  dispatch(x: ChainContext): void {
    const limit = x.cluster.limit;
    const admission = limit.enter(x);
    if (admission === 'admitted') {
      x.admitted = true;
      this.next!.dispatch(x);
    } else if (admission === 'rejected') {
      this.up!.onRefused(x, 'OVERLOADED', `cluster ${x.cluster.config.name} has ${limit.active} requests in flight and ${limit.pending} waiting, its limits`);
    } else {
      // 'queued': admitted() dispatches once a slot frees up.
      x.waitedForSlot = true;
    }
  }

  /** A slot freed up for this queued request (through the context's admit). */
  admitted(x: ChainContext): void {
    x.admitted = true;
    if (x.abandoned || x.finished) return;
    this.next!.dispatch(x);
  }

  override onDeadline(x: ChainContext): void {
    if (x.admitted) {
      this.next!.onDeadline(x);
      return;
    }
    x.cluster.limit.cancel(x);
    x.abandoned = true;
    this.up!.onRefused(x, 'OVERLOADED', `no slot of cluster ${x.cluster.config.name} freed up within the route timeout (${x.route.timeoutMs}ms)`);
  }

  override onEnd(x: ChainContext): void {
    this.next!.onEnd(x);
    if (x.admitted) x.cluster.limit.leave();
    else x.cluster.limit.cancel(x);
  }
}
