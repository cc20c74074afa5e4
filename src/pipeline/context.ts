import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { ClusterRoute } from '../config/types';
import type { AdmissionWaiter } from '../policy/concurrency-limit';
import type { RequestTrace } from '../telemetry/tracing';
import type { ClusterRuntime } from '../upstream/cluster';
import type { ListenerIdentity, ProxyServices } from '../proxy/state';
import type { ChainState } from './chain-state';
import type { PolicySteps } from './compose';
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
 * What the policy steps both chains of a route hold (rate limit, deadline, breaker,
 * concurrency, retry, host rewrite) read and write: the one interface both kinds of exchange
 * implement, the HTTP request (Exchange) and the WebSocket tunnel (Tunnel): the request's facts
 * and the steps' own fields (chain-state.ts). The steps only an HTTP chain holds, and the two
 * ends of each chain (the client's side and the terminal), see their kind's full object.
 */
export interface ChainContext extends AdmissionWaiter, ChainState<AttemptControl> {
  readonly req: IncomingMessage;
  readonly listener: ListenerIdentity;
  /** The connection's peer (its address, and whether it is a trusted proxy): the rate limit's `client` key. */
  readonly peer: PeerFacts;
  readonly route: ClusterRoute;
  readonly cluster: ClusterRuntime;
  readonly services: ProxyServices;
  readonly trace: RequestTrace;
  /** This kind's compiled chain of the route: its timers and callbacks come back to its steps. */
  readonly chain: PolicySteps;
  /** A gRPC call: the retry step reads a trailers-only answer's `grpc-status` (false for a tunnel). */
  readonly grpc: boolean;
  /** The client's `grpc-timeout`, ms, which caps the deadline; undefined when none (always for a tunnel). */
  readonly grpcTimeoutMs: number | undefined;
  /** The request headers the app receives (host rewrite sets `host` per attempt). */
  readonly upstreamHeaders: string[];
  readonly hasBody: boolean;

  // --- the client's side (head): read by the policies ---
  /** The answer started towards the client: nothing is retried or answered by the sidecar any more. */
  responseStarted: boolean;
  finished: boolean;

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
