import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { ClusterRoute } from '../config/types';
import type { ErrorCode } from '../core/errors';
import type { TraceIdSink, RequestTrace } from '../telemetry/tracing';
import type { ClusterRuntime } from '../upstream/cluster';
import type { OpenTunnel, WebSocketProxy } from '../upstream/websocket';
import type { ListenerIdentity, ProxyServices } from '../proxy/state';
import type { PeerFacts } from '../proxy/client-address';
import type { TunnelChain } from './compose';
import { ChainState } from './chain-state';
import type { ChainContext } from './context';
import type { TunnelAttempt } from './tunnel-terminal';

/** A routed `Upgrade: websocket` request, ready to go down its route's chain. */
export interface TunnelRequest {
  readonly req: IncomingMessage;
  /** The client's socket, handed over by the HTTP (or HTTPS, or HTTP/2 with HTTP/1) server's 'upgrade' event. */
  readonly socket: Socket;
  /** Bytes the client sent after the request head (the server read them already). */
  readonly head: Buffer;
  readonly listener: ListenerIdentity;
  readonly route: ClusterRoute;
  readonly cluster: ClusterRuntime;
  readonly services: ProxyServices;
  readonly websockets: WebSocketProxy;
  readonly requestId: string;
  /** Path and query sent to the app (after rewritePrefix). */
  readonly upstreamPath: string;
  /**
   * Headers for the app as a flat [name, value, ...] list (upstreamRequestHeaders: the same
   * X-Forwarded-*, x-request-id and trace context policy as any request). The Upgrade and
   * Connection headers the handshake needs are added when it is sent.
   */
  readonly upstreamHeaders: string[];
  readonly startedAt: number;
  /** The connection's peer (the rate limit's `client` key). */
  readonly peer: PeerFacts;
}

/** Envoy-style flags for the access log: who ended the tunnel. */
export type TunnelFlag = 'DC' | 'UC' | 'SI';

/**
 * The one per-upgrade object of a WebSocket tunnel, from the upgrade request until both
 * sockets closed: the request's facts, and one group of fields per step of the route's tunnel
 * chain, written only by that step's file (the policies' groups in chain-state.ts, shared with
 * the HTTP Exchange); the ends are the tunnel's own (tunnel-observe.ts, tunnel-terminal.ts).
 */
export class Tunnel extends ChainState<TunnelAttempt> implements ChainContext, OpenTunnel, TraceIdSink {
  readonly req: IncomingMessage;
  readonly socket: Socket;
  readonly head: Buffer;
  readonly listener: ListenerIdentity;
  readonly route: ClusterRoute;
  readonly cluster: ClusterRuntime;
  readonly services: ProxyServices;
  readonly websockets: WebSocketProxy;
  readonly requestId: string;
  readonly upstreamPath: string;
  readonly upstreamHeaders: string[];
  readonly startedAt: number;
  readonly chain: TunnelChain;
  readonly trace: RequestTrace;
  /** The upgrade request's body, if any, is the tunnel's first bytes: nothing to replay. */
  readonly hasBody = false;
  readonly grpc = false;
  readonly grpcTimeoutMs = undefined;
  readonly peer: PeerFacts;

  // --- tunnel-observe.ts: the client's side and the record of the tunnel ---
  status = 0;
  errorCode: ErrorCode | undefined;
  flag: TunnelFlag | undefined;
  /** Bytes from the client to the app, and from the app (or the sidecar) to the client. */
  bytesIn = 0;
  bytesOut = 0;
  upstreamMs: number | undefined;
  responseStarted = false;
  /** An answer (101, a relayed refusal or the sidecar's error) went to the client. */
  answered = false;
  upgraded = false;
  clientOpen = true;
  /** The client left before any answer (logged as 499). */
  clientGone = false;
  /** The chain's steps released what they hold (onEnd ran). */
  chainEnded = false;
  finished = false;
  /** The app's side of an open tunnel. */
  upstreamSocket: Socket | undefined;
  /** Response headers the sidecar adds to its answer (the trace id, when asked for). */
  readonly extraResponseHeaders: string[] = [];

  // --- tunnel-terminal.ts: the handshake attempts (the rest in ChainState) ---
  /** Handshake connections not yet closed (a retried one may still be closing). */
  upstreamSocketsOpen = 0;

  constructor(request: TunnelRequest, chain: TunnelChain) {
    super();
    this.req = request.req;
    this.socket = request.socket;
    this.head = request.head;
    this.listener = request.listener;
    this.route = request.route;
    this.cluster = request.cluster;
    this.services = request.services;
    this.websockets = request.websockets;
    this.requestId = request.requestId;
    this.upstreamPath = request.upstreamPath;
    this.upstreamHeaders = request.upstreamHeaders;
    this.startedAt = request.startedAt;
    this.peer = request.peer;
    this.chain = chain;
    this.trace = request.services.tracing.startRequest(request.req, this, request.listener.name, request.listener.proto, request.requestId);
  }

  start(): void {
    this.websockets.opened(this);
    this.chain.head.dispatch(this);
  }

  /** A slot of the cluster's concurrency limit freed up for this queued upgrade. */
  admit(): void {
    this.chain.concurrency.admitted(this);
  }

  /** The trace's response header (tracing.responseHeader), added to whatever the client is answered. */
  setHeader(name: string, value: string): void {
    this.extraResponseHeaders.push(name, value);
  }

  shutdown(): void {
    this.chain.head.shutdown(this);
  }

  isCurrent(attempt: TunnelAttempt): boolean {
    return attempt === this.handler && !this.abandoned && !this.finished;
  }

  /** Never read: an upgrade has no body to send (hasBody is false). */
  requestBodySource(): Readable {
    return this.req;
  }

  bodyReplayable(): boolean {
    return true;
  }

  readonly onClientError = (): void => {
    this.chain.head.onClientError(this);
  };

  readonly onClientEnd = (): void => {
    this.chain.head.onClientEnd(this);
  };

  readonly onClientClose = (): void => {
    this.chain.head.onClientClose(this);
  };
}
