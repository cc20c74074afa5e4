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
 *
 * Pending counts two queues: requests waiting here for a slot, and attempts an endpoint's
 * connection pool holds until one of its connections is free (undici's queue, which the
 * sidecar cannot shrink: an attempt leaves it only when it gets a connection, even when its
 * client is long gone). Counting the second is what keeps it bounded: a client that opens
 * requests and abandons them at once (HTTP/2 rapid reset) frees its slot immediately, but
 * not the place its attempt holds in the pool's queue.
 */
export class ConcurrencyLimit {
  private activeCount = 0;
  /** Insertion-ordered: the first entry is the longest waiting. */
  private readonly waiting = new Set<AdmissionWaiter>();
  /** Attempts handed to a pool that have no connection yet. */
  private connectionWaits = 0;

  constructor(
    private readonly maxActive: number,
    private readonly maxPending: number,
  ) {}

  get active(): number {
    return this.activeCount;
  }

  /** Requests waiting for a slot plus attempts waiting for a connection. */
  get pending(): number {
    return this.waiting.size + this.connectionWaits;
  }

  /** Attempts an endpoint's pool holds until a connection is free. */
  get waitingForConnection(): number {
    return this.connectionWaits;
  }

  enter(waiter: AdmissionWaiter): Admission {
    // An admitted request may have to wait for a connection too: it is let in only while
    // that queue has room (or is empty, so that maxPending 0 still admits).
    if (this.activeCount < this.maxActive && this.waiting.size === 0 && (this.connectionWaits === 0 || this.connectionWaits < this.maxPending)) {
      this.activeCount++;
      return 'admitted';
    }
    if (this.pending < this.maxPending) {
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

  /** An attempt was handed to a pool; `connectionReached` follows once, when it gets a connection or fails first. */
  attemptQueued(): void {
    this.connectionWaits++;
  }

  connectionReached(): void {
    this.connectionWaits--;
  }
}
