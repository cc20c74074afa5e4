import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import type { RouteInstruments } from '../telemetry/metrics/metrics';
import type { ClusterRoute } from '../config/types';
import type { ErrorCode } from '../core/errors';
import type { AttemptRecord } from '../telemetry/flight-recorder';
import type { LoggedRequest } from '../telemetry/access-log';
import type { RequestTrace } from '../telemetry/tracing';
import type { ClusterRuntime } from '../upstream/cluster';
import { limitRequestBody } from '../proxy/body-limit';
import { copyRequestBody } from '../proxy/body-copy';
import type { ListenerIdentity, ProxyServices } from '../proxy/state';
import type { PeerFacts } from '../proxy/client-address';
import type { AttemptHandler } from './attempt';
import type { HttpChain } from './compose';
import { ChainState } from './chain-state';
import type { ChainContext, ProxiedRequest } from './context';

const NO_HEADERS: readonly string[] = [];

/**
 * The one per-request object of a proxied exchange: the request's facts, and one group of
 * fields per step of the route's chain, written only by that step's file (the steps themselves
 * are shared by every request of the route). Short-lived: dropped when the client's response
 * closes. Nothing else is allocated per request but the attempt handlers.
 */
export class Exchange extends ChainState<AttemptHandler> implements ChainContext, LoggedRequest, ProxiedRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly listener: ListenerIdentity;
  readonly route: ClusterRoute;
  readonly cluster: ClusterRuntime;
  readonly services: ProxyServices;
  readonly requestId: string;
  readonly upstreamPath: string;
  readonly upstreamHeaders: string[];
  readonly hasBody: boolean;
  readonly startedAt: number;
  readonly trace: RequestTrace;
  readonly peer: PeerFacts;
  readonly mirrorCluster: ClusterRuntime | undefined;
  readonly grpc: boolean;
  readonly grpcTimeoutMs: number | undefined;
  readonly chain: HttpChain;

  // --- observe.ts: the client's response and the record of the exchange ---
  status = 0;
  errorCode: ErrorCode | undefined;
  bytesIn = 0;
  bytesOut = 0;
  upstreamMs: number | undefined;
  /** Response headers went to the client: nothing is retried or answered by the sidecar any more. */
  responseStarted = false;
  clientGone = false;
  clientStalled = false;
  finished = false;
  resumeUpstream: (() => void) | undefined;
  /** The response headers as written to the client (kept for the flight recorder, which copies nothing). */
  relayedHeaders: readonly string[] | undefined;
  /** Armed while the client's socket is full; a client that reads nothing for the route timeout is cut. */
  stallTimer: NodeJS.Timeout | undefined;
  listeningForDrain = false;
  /** The gRPC status the client got (from the app's headers or trailers, or the sidecar's error); gRPC calls only. */
  grpcStatus: number | undefined;

  // --- fault.ts ---
  /** The route's fault policy delayed or aborted this request (flag FI). */
  faultInjected = false;
  /** The status of an injected abort. */
  faultAbortStatus: number | undefined;
  /** Armed during an injected delay. */
  faultTimer: NodeJS.Timeout | undefined;
  /** The delay is to be followed by an abort. */
  faultAbortAfterDelay = false;

  // --- mirror.ts ---
  /** A copy of this request goes to the mirror once its body has passed whole. */
  mirrorBodyPending = false;

  // --- cors.ts: the Access-Control-* and Vary headers of the response ---
  corsHeaders: readonly string[] = NO_HEADERS;

  // --- compression.ts: where observe writes the response body, when not to the client directly ---
  bodySink: Writable | undefined;

  // --- record.ts: the flight recorder's timeline (only when the recorder is on) ---
  recordedAttempts: AttemptRecord[] | undefined;
  recordedDecisions: string[] | undefined;

  // --- pool.ts (the terminal): the attempts (the rest in ChainState) ---
  /** The wait (0ms) before the stale-connection retry is dispatched. */
  redispatchTimer: NodeJS.Timeout | undefined;
  /** The client's body behind the route's size limit, created on first use. */
  private limitedBody: Readable | undefined;

  constructor(request: ProxiedRequest, chain: HttpChain) {
    super();
    // Copied, not kept: the fields are read on every event of the exchange (implementing
    // ProxiedRequest makes the compiler hold the two lists of fields to each other).
    this.req = request.req;
    this.res = request.res;
    this.listener = request.listener;
    this.route = request.route;
    this.cluster = request.cluster;
    this.services = request.services;
    this.requestId = request.requestId;
    this.upstreamPath = request.upstreamPath;
    this.upstreamHeaders = request.upstreamHeaders;
    this.hasBody = request.hasBody;
    this.startedAt = request.startedAt;
    this.trace = request.trace;
    this.peer = request.peer;
    this.mirrorCluster = request.mirrorCluster;
    this.grpc = request.grpc;
    this.grpcTimeoutMs = request.grpcTimeoutMs;
    this.chain = chain;
  }

  start(): void {
    this.chain.head.dispatch(this);
  }

  /** A slot of the cluster's concurrency limit freed up for this queued request. */
  admit(): void {
    this.chain.concurrency.admitted(this);
  }

  readonly onClientClose = (): void => {
    this.chain.head.onClientClose(this);
  };

  private routeInstruments: RouteInstruments | undefined;
  /** The route's metric series (by listener, route and cluster), looked up once. */
  get instruments(): RouteInstruments {
    // A weighted split's series are by the cluster chosen for this request.
    return (this.routeInstruments ??=
      this.route.split === undefined
        ? this.services.metrics.forClusterRoute(this.listener.name, this.route)
        : this.services.metrics.forRoute(this.listener.name, this.route.name, this.cluster.config.name));
  }

  /** Whether events of this attempt may still shape the client's response. */
  isCurrent(handler: AttemptHandler): boolean {
    return handler === this.handler && !this.abandoned && !this.finished;
  }

  /** The client's body as the exchange reads it: behind the route's `maxRequestBodyBytes`. */
  requestBodySource(): Readable {
    if (this.limitedBody === undefined) {
      const limited = limitRequestBody(this.req, this.route.maxRequestBodyBytes);
      const mirror = this.route.mirror;
      this.limitedBody = this.mirrorBodyPending && mirror !== undefined ? copyRequestBody(limited, mirror.maxBodyBytes, (body) => this.chain.mirror!.bodyCopied(this, body)) : limited;
    }
    return this.limitedBody;
  }

  /** The request has no body, or its body was kept whole for replay. */
  bodyReplayable(): boolean {
    return !this.hasBody || (this.body !== undefined && this.body.replayable);
  }

  /** Time left before the route timeout, ms (0 once it expired). */
  remainingMs(): number {
    return this.deadlineExpired ? 0 : this.deadlineAt - performance.now();
  }

  // --- what the access log says of the exchange (LoggedRequest) ---
  get method(): string | undefined {
    return this.req.method;
  }
  get path(): string | undefined {
    return this.req.url;
  }
  get listenerName(): string {
    return this.listener.name;
  }
  get routeName(): string {
    return this.route.name;
  }
  get clusterName(): string {
    return this.cluster.config.name;
  }
  get attempts(): number {
    return this.attempt;
  }
  get upstreamUrl(): string | undefined {
    return this.endpoint?.config.url;
  }
}
