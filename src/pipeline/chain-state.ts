import type { BreakerTicket } from '../policy/circuit-breaker';
import type { ReplayableBody } from '../policy/replay-body';
import type { NoRetryReason, RetryReason } from '../policy/retry';
import type { EndpointRuntime } from '../upstream/cluster';
import type { AttemptControl } from './context';

/**
 * The per-request fields of the steps both chains of a route hold, and of the attempts, with
 * their starting values: declared once, the base of both kinds of exchange (Exchange for an
 * HTTP request, Tunnel for a WebSocket upgrade) and part of context.ts's `ChainContext`. Each
 * group is written only by the file named above it. `Attempt` is the kind's own attempt.
 */
export abstract class ChainState<Attempt extends AttemptControl> {
  // --- rate-limit.ts ---
  /** Retry-After and the RateLimit headers of a 429 RATE_LIMITED refusal, as a flat [name, value, ...] list. */
  rateLimitHeaders: string[] | undefined;

  // --- deadline.ts: the request's one clock (per-try timeout or route deadline) ---
  clock: NodeJS.Timeout | undefined;
  clockIsPerTry = false;
  deadlineAt = 0;
  deadlineExpired = false;

  // --- breaker.ts ---
  breakerTicket: BreakerTicket | undefined;

  // --- concurrency.ts ---
  admitted = false;
  /** The request waited for a slot: its first try's per-try timeout counts from its dispatch. */
  waitedForSlot = false;

  // --- retry.ts ---
  /** Present when the request body may have to be sent again. */
  body: ReplayableBody | undefined;
  backoffTimer: NodeJS.Timeout | undefined;
  /** Why the last answer was not retried (recorded by the flight recorder). */
  retryDeclined: NoRetryReason | undefined;

  // --- the terminal (pool.ts, tunnel-terminal.ts): the attempts ---
  attempt = 0;
  /** The attempt whose events may shape the answer; undefined between attempts. */
  handler: Attempt | undefined;
  endpoint: EndpointRuntime | undefined;
  attemptStartedAt = 0;
  /** Why the current attempt is a retry; undefined for the first try. */
  retryReason: RetryReason | undefined;
  /** The backoff waited before the current attempt, ms. */
  backoffMs = 0;
  /** The request had its one retry after the stale keep-alive race (not one of `retry.attempts`; HTTP only). */
  staleConnectionRetried = false;
  /** Set once the exchange answered without the current attempt (or its client left): a late attempt is dropped. */
  abandoned = false;
}
