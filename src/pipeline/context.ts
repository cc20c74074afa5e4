import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ClusterRoute } from '../config/types';
import type { RequestTrace } from '../telemetry/tracing';
import type { ClusterRuntime } from '../upstream/cluster';
import type { ListenerIdentity, ProxyServices } from '../proxy/state';

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
  /** A gRPC call (content-type application/grpc*): errors, retries and the deadline follow gRPC. */
  readonly grpc: boolean;
  /** The client's `grpc-timeout`, ms; undefined when it sent none (or not a gRPC call). */
  readonly grpcTimeoutMs: number | undefined;
}
