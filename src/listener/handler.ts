import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ErrorCode } from '../core/errors';
import { ipInCidrs } from '../config/cidr';
import { findRoute, rewritePath, type RoutableRequest } from '../router/route-table';
import { chainFor } from '../pipeline/compose';
import { keyValueOf } from '../pipeline/request-key';
import type { WeightedSplit } from '../config/types';
import { pickWeighted } from '../policy/weighted-split';
import { hash32 } from '../upstream/load-balancer';
import { Exchange } from '../pipeline/exchange';
import { requestIdFrom, upstreamRequestHeaders } from '../proxy/headers';
import { normalizePeerAddress } from '../core/peer-address';
import { arrivedAfterRefusal, refuseLaterRequests } from '../proxy/closing-connections';
import { checkRequest } from '../proxy/request-guard';
import { connectionOf, requestHasBody } from '../proxy/http2-request';
import { localAnswerBodyBytes, sendDirectResponse, sendError, sendRedirect } from '../proxy/respond';
import type { PeerFacts } from '../proxy/client-address';
import { escapedSlashOutcome } from '../proxy/escaped-slashes';
import { redirectLocation } from '../policy/redirect';
import type { HeaderMutation } from '../config/types';

/** 308: the client repeats the same method and body at the unescaped path. */
export const ESCAPED_SLASH_REDIRECT_STATUS = 308;
const NO_HEADER_CHANGES: HeaderMutation = { add: [], remove: [] };
import { GRPC_STATUS, grpcMethodOf, isGrpcRequest, parseGrpcTimeout } from '../core/grpc';
import { grpcStatusOf } from '../core/errors';
import { accessLogEntry, type LoggedRequest } from '../telemetry/access-log';
import type { RequestTrace } from '../telemetry/tracing';
import type { ListenerIdentity, ProxyServices, StateHolder } from '../proxy/state';

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

export type { PeerFacts } from '../proxy/client-address';
/** Per-connection facts computed once, on the connection's first request. */
const peerFacts = new WeakMap<Socket, PeerFacts>();

/** Client certificate description of an mTLS connection, provided by the TLS listener. */
export type ClientCertLookup = (socket: Socket) => string | undefined;

/** The router's view of a request; `headers` is read only by routes that match on headers. */
export class RequestView implements RoutableRequest {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly host: string,
    private readonly req: IncomingMessage,
  ) {}

  get headers(): IncomingMessage['headers'] {
    return this.req.headers;
  }
}

/**
 * The listener's request entry point: route, then answer directly or start a proxied
 * exchange. It reads the current state once, so the whole request sees one config.
 */
export function createRequestHandler(
  listener: ListenerIdentity,
  holder: StateHolder,
  services: ProxyServices,
  clientCert?: ClientCertLookup,
): RequestHandler {
  return function handleRequest(req, res) {
    // Left unanswered: the connection closes once the refusal before it is written.
    if (arrivedAfterRefusal(req)) return;
    const startedAt = performance.now();
    const state = holder.current;
    const requestId = requestIdFrom(req.headers['x-request-id']);
    const trace = services.tracing.startRequest(req, res, listener.name, listener.proto, requestId);
    const method = req.method ?? 'GET';
    // The one place the path is normalised: routes match, and the app receives, this path.
    const checked = checkRequest(req, listener.config);
    if (!checked.ok) {
      refuseLaterRequests(req);
      sendError(res, checked.code, requestId, checked.reason, { close: true });
      recordLocalAnswer(services, listener, res, req, requestId, trace, startedAt, checked.code, 'DPE');
      return;
    }
    const { path, query } = checked;
    const escaped = escapedSlashOutcome(listener.config.escapedSlashes, path);
    if (escaped.kind === 'reject') {
      sendError(res, 'BAD_REQUEST', requestId, escaped.reason);
      recordLocalAnswer(services, listener, res, req, requestId, trace, startedAt, 'BAD_REQUEST', 'DPE');
      return;
    }
    if (escaped.kind === 'redirect') {
      sendRedirect(res, ESCAPED_SLASH_REDIRECT_STATUS, escaped.path + query, NO_HEADER_CHANGES, requestId);
      recordLocalAnswer(services, listener, res, req, requestId, trace, startedAt, undefined, undefined);
      return;
    }
    const routes = state.routes.get(listener.name) ?? [];
    const route = findRoute(routes, new RequestView(method, path, checked.host, req));

    if (route === undefined) {
      sendError(res, 'NO_ROUTE', requestId, `no route of listener ${listener.name} matches ${method} ${path}`);
      recordLocalAnswer(services, listener, res, req, requestId, trace, startedAt, 'NO_ROUTE', 'NR');
      return;
    }
    if (route.action === 'directResponse') {
      sendDirectResponse(res, route.directResponse, route.responseHeaders, requestId, method === 'HEAD');
      recordLocalAnswer(services, listener, res, req, requestId, trace, startedAt, undefined, undefined, route.name);
      return;
    }
    if (route.action === 'redirect') {
      const url = { scheme: listener.proto, host: checked.host, authority: checked.authority, path, query };
      const location = redirectLocation(route.redirect, url, route.match.kind === 'prefix' ? route.match.value : undefined);
      if (location === undefined) {
        sendError(res, 'BAD_REQUEST', requestId, `route ${route.name} redirects, and the request names no host (send a Host header)`);
        recordLocalAnswer(services, listener, res, req, requestId, trace, startedAt, 'BAD_REQUEST', 'DPE', route.name);
        return;
      }
      sendRedirect(res, route.redirect.status, location, route.responseHeaders, requestId);
      recordLocalAnswer(services, listener, res, req, requestId, trace, startedAt, undefined, undefined, route.name);
      return;
    }

    const hasBody = requestHasBody(req);
    const declaredLength = Number(req.headers['content-length'] ?? 0);
    if (declaredLength > route.maxRequestBodyBytes) {
      refuseLaterRequests(req);
      sendError(res, 'REQUEST_TOO_LARGE', requestId,
        `the request body (${declaredLength} bytes) is larger than route ${route.name} allows (${route.maxRequestBodyBytes} bytes)`,
        { close: true });
      recordLocalAnswer(services, listener, res, req, requestId, trace, startedAt, 'REQUEST_TOO_LARGE', 'DPE', route.name, route.cluster);
      return;
    }

    const socket = connectionOf(req);
    const peer = peerFactsOf(socket, listener);
    const clusterName = route.split === undefined ? route.cluster : chooseCluster(route.split, req, peer, listener, route.name);
    const cluster = state.clusters.get(clusterName);
    if (cluster === undefined) {
      // Unreachable for a validated config; kept so a bug answers 503 instead of crashing.
      sendError(res, 'NO_HEALTHY_UPSTREAM', requestId, `cluster ${clusterName} is not loaded`);
      recordLocalAnswer(services, listener, res, req, requestId, trace, startedAt, 'NO_HEALTHY_UPSTREAM', 'UH', route.name, clusterName);
      return;
    }

    const grpc = isGrpcRequest(req);
    if (checked.underscoreHeaders > 0) services.metrics.requestHeadersDropped.labels(listener.name, 'underscore').inc(checked.underscoreHeaders);
    const headers = upstreamRequestHeaders(
      req.rawHeaders,
      {
        peerAddress: peer.address,
        peerTrusted: peer.trusted,
        proto: listener.proto,
        requestId,
        clientCert: clientCert?.(socket),
        traceHeaders: services.tracing.ownedRequestHeaders,
        authority: checked.authority,
        dropUnderscored: checked.underscoreHeaders > 0,
        grpc,
      },
      route.requestHeaders,
    );
    const upstreamPath =
      (route.rewritePrefix !== undefined && route.match.kind === 'prefix' ? rewritePath(route.match.value, route.rewritePrefix, path) : path) + query;

    const mirrorCluster = route.mirror === undefined ? undefined : state.clusters.get(route.mirror.cluster);
    new Exchange({ req, res, listener, route, cluster, services, requestId, upstreamPath, upstreamHeaders: headers, hasBody, startedAt, trace, peer, mirrorCluster, grpc,
      grpcTimeoutMs: grpc ? parseGrpcTimeout(req.headers['grpc-timeout']) : undefined }, chainFor(route, state.config.admin.recorder !== undefined).http).start();
  };
}

/** The cluster of a weighted split for this request: by the hash of its `hashOn` key (sticky), else at random. */
function chooseCluster(split: WeightedSplit, req: IncomingMessage, peer: PeerFacts, listener: ListenerIdentity, routeName: string): string {
  const point = split.hashOn === undefined ? Math.random() : hash32(keyValueOf(split.hashOn, req, peer, listener.config.trustedProxies, routeName)) / 2 ** 32;
  return pickWeighted(split, point);
}

/** The peer's address and whether it is a trusted proxy, computed once per connection. */
export function peerFactsOf(socket: Socket, listener: ListenerIdentity): PeerFacts {
  let peer = peerFacts.get(socket);
  if (peer === undefined) {
    const address = normalizePeerAddress(socket.remoteAddress);
    peer = { address, trusted: ipInCidrs(address, listener.config.trustedProxies) };
    peerFacts.set(socket, peer);
  }
  return peer;
}

export function recordLocalAnswer(
  services: ProxyServices,
  listener: ListenerIdentity,
  res: ServerResponse,
  req: IncomingMessage,
  requestId: string,
  trace: RequestTrace,
  startedAt: number,
  error: ErrorCode | undefined,
  flags: string | undefined,
  route = '',
  cluster = '',
): void {
  const durationMs = performance.now() - startedAt;
  // A gRPC call answered here: the sidecar's error status; a direct response has no
  // grpc-status, which a gRPC client reads as UNKNOWN.
  const grpc = isGrpcRequest(req) ? { status: error === undefined ? GRPC_STATUS.UNKNOWN : grpcStatusOf(error), method: grpcMethodOf(req.url) } : undefined;
  trace.end({ status: res.statusCode, route: route || undefined, cluster: cluster || undefined, errorCode: error, flags, grpc });
  services.metrics.forRoute(listener.name, route, cluster).answered(res.statusCode, durationMs / 1000);
  if (grpc !== undefined) services.metrics.grpcResponsesTotal.labels(listener.name, route, cluster, String(grpc.status)).inc();
  services.accessLog.write(
    accessLogEntry({ ...localAnswer(req, listener, requestId, res.statusCode, route, cluster, error), bytesOut: localAnswerBodyBytes(res), grpcStatus: grpc?.status }, durationMs, flags, trace),
  );
}

/** What the access log says of a request the sidecar answered itself (no upstream attempt). */
export function localAnswer(
  req: IncomingMessage,
  listener: ListenerIdentity,
  requestId: string,
  status: number,
  route: string,
  cluster: string,
  error: ErrorCode | undefined,
): LoggedRequest {
  return {
    method: req.method,
    path: req.url,
    listenerName: listener.name,
    routeName: route || undefined,
    clusterName: cluster || undefined,
    requestId,
    status,
    upstreamMs: undefined,
    bytesIn: 0,
    bytesOut: 0,
    attempts: 0,
    errorCode: error,
    upstreamUrl: undefined,
  };
}
