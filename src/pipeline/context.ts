import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { ClusterRoute } from '../config/types';
import type { BreakerTicket } from '../policy/circuit-breaker';
import type { AdmissionWaiter } from '../policy/concurrency-limit';
import type { ReplayableBody } from '../policy/replay-body';
import type { NoRetryReason, RetryReason } from '../policy/retry';
import type { RequestTrace } from '../telemetry/tracing';
import type { ClusterRuntime, EndpointRuntime } from '../upstream/cluster';
import type { ListenerIdentity, ProxyServices } from '../proxy/state';
import type { RouteChain } from './compose';
import type { Interceptor } from './interceptor';
import type { Exchange } from './exchange';
import type { PeerFacts } from '../proxy/client-address';

/**
 * The facts of one proxied request, fixed once it is routed: what the listener's request entry
 * hands to the exchange (one object instead of a long positional list). The exchange keeps the
 * mutable per-request state beside it.
 */
export interface ProxiedRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly listener: ListenerIdentity;
  readonly route: ClusterRoute;
  readonly cluster: ClusterRuntime;
  readonly services: ProxyServices;
  readonly requestId: string;
  /** The path (and query) the app receives, after any prefix rewrite. */
  readonly upstreamPath: string;
  /** The request headers the app receives, as a flat [name, value, ...] list; `x-sidecar-attempt` is set per attempt. */
  readonly upstreamHeaders: string[];
  readonly hasBody: boolean;
  /** performance.now() when the request arrived. */
  readonly startedAt: number;
  readonly trace: RequestTrace;
  /** The route's mirror cluster; undefined when the route does not mirror. */
  readonly mirrorCluster: ClusterRuntime | undefined;
  /** The connection's peer (its address, and whether it is a trusted proxy). */
  readonly peer: PeerFacts;
  /** A gRPC call (content-type application/grpc*): errors, retries and the deadline follow gRPC. */
  readonly grpc: boolean;
  /** The client's `grpc-timeout`, ms; undefined when it sent none (or not a gRPC call). */
  readonly grpcTimeoutMs: number | undefined;
}

/**
 * What the policy steps of a chain (deadline, breaker, concurrency, retry, host rewrite) read
 * and write: the one interface both kinds of exchange implement, the HTTP request (Exchange)
 * and the WebSocket tunnel (Tunnel). Each group of fields is written only by the step named
 * above it; the two ends of the chain (the client's side and the terminal) are each kind's
 * own and see their kind's full object.
 */
export interface ChainContext extends AdmissionWaiter {
  /** Which kind of exchange this is: policies that mean nothing for a tunnel (fault, mirror) pass a tunnel on. */
  readonly kind: 'http' | 'tunnel';
  readonly req: IncomingMessage;
  readonly listener: ListenerIdentity;
  /** The connection's peer (its address, and whether it is a trusted proxy): the rate limit's `client` key. */
  readonly peer: PeerFacts;
  readonly route: ClusterRoute;
  readonly cluster: ClusterRuntime;
  readonly services: ProxyServices;
  readonly trace: RequestTrace;
  /** The route's compiled chain: its timers and callbacks come back to its steps. */
  readonly chain: RouteChain;
  /** This kind's two ends of the chain (see compose.ts). */
  readonly ends: ChainEnds;
  /** The request headers the app receives (host rewrite sets `host` per attempt). */
  readonly upstreamHeaders: string[];
  readonly hasBody: boolean;

  // --- rate-limit.ts ---
  /** Retry-After and the RateLimit headers of a 429 RATE_LIMITED refusal. */
  rateLimitHeaders: string[] | undefined;

  // --- the client's side (head): read by the policies ---
  /** The answer started towards the client: nothing is retried or answered by the sidecar any more. */
  responseStarted: boolean;
  finished: boolean;

  // --- deadline.ts ---
  clock: NodeJS.Timeout | undefined;
  clockIsPerTry: boolean;
  deadlineAt: number;
  deadlineExpired: boolean;

  // --- breaker.ts ---
  breakerTicket: BreakerTicket | undefined;

  // --- concurrency.ts ---
  admitted: boolean;
  waitedForSlot: boolean;

  // --- retry.ts ---
  body: ReplayableBody | undefined;
  backoffTimer: NodeJS.Timeout | undefined;
  /** Why the last failure was not retried (the flight recorder shows it). */
  retryDeclined: NoRetryReason | undefined;

  // --- the terminal: the attempts ---
  attempt: number;
  /** The current attempt; undefined between attempts. */
  handler: AttemptControl | undefined;
  endpoint: EndpointRuntime | undefined;
  retryReason: RetryReason | undefined;
  backoffMs: number;
  /** The request had its one retry after the stale keep-alive race (HTTP only). */
  staleConnectionRetried: boolean;
  /** Set once the exchange answered without the current attempt (or its client left). */
  abandoned: boolean;

  /** The client's body as the exchange reads it (only read when `hasBody`). */
  requestBodySource(): Readable;
  /** The request has no body, or its body was kept whole for replay. */
  bodyReplayable(): boolean;
}

/** What a policy may do with an attempt whose answer it replaces (the retry step). */
export interface AttemptControl {
  /** Nothing of this attempt's answer reaches the client. */
  discard(): void;
}

/**
 * The two ends of a chain for one kind of exchange: the client's side at the head and the
 * terminal that makes the attempts. The policy steps between them are the route's, shared by
 * both kinds; the ports at either end of them (compose.ts) pass each event on to the ends of
 * the exchange at hand.
 */
export interface ChainEnds {
  readonly head: Interceptor;
  readonly terminal: Interceptor;
}

/** True for an HTTP request; false for a WebSocket tunnel. Steps that act on HTTP alone pass a tunnel on. */
export function isHttpExchange(x: ChainContext): x is Exchange {
  return x.kind === 'http';
}
