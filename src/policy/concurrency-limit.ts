/** A request waiting for a slot; `admit` is called once it has one. */
export interface AdmissionWaiter {
  admit(): void;
}

export type Admission = 'admitted' | 'queued' | 'rejected';

/**
 * Envoy-style concurrency limits of a cluster: at most `maxActive` requests in flight, at most
 * `maxPending` waiting (first come, first served) for one of them to end; beyond that a request
 * is refused at once (503 OVERLOADED), which is kinder to a saturated app and to the client
 * than a queue that grows until every request in it times out.
 */
export class ConcurrencyLimit {
  private activeCount = 0;
  /** Insertion-ordered: the first entry is the longest waiting. */
  private readonly waiting = new Set<AdmissionWaiter>();

  constructor(
    private readonly maxActive: number,
    private readonly maxPending: number,
  ) {}

  get active(): number {
    return this.activeCount;
  }

  get pending(): number {
    return this.waiting.size;
  }

  enter(waiter: AdmissionWaiter): Admission {
    if (this.activeCount < this.maxActive && this.waiting.size === 0) {
      this.activeCount++;
      return 'admitted';
    }
    if (this.waiting.size < this.maxPending) {
      this.waiting.add(waiter);
      return 'queued';
    }
    return 'rejected';
  }

  /** An admitted request ended: its slot goes to the longest waiting one. */
  leave(): void {
    this.activeCount--;
    while (this.activeCount < this.maxActive && this.waiting.size > 0) {
      const next = this.waiting.values().next().value as AdmissionWaiter;
      this.waiting.delete(next);
      this.activeCount++;
      next.admit();
    }
  }

  /** A waiting request gave up (deadline, client gone); true when it was still waiting. */
  cancel(waiter: AdmissionWaiter): boolean {
    return this.waiting.delete(waiter);
  }
}
