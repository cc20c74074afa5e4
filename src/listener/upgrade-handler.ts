import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ErrorCode } from '../core/errors';
import { asksWebSocketUpgrade } from '../core/header-list';
import { findRoute, rewritePath } from '../router/route-table';
import { accessLogEntry } from '../telemetry/access-log';
import type { WebSocketProxy } from '../upstream/websocket';
import { chainFor } from '../pipeline/compose';
import { Tunnel } from '../pipeline/tunnel';
import { localAnswer, peerFactsOf, RequestView, type ClientCertLookup, type RequestHandler } from './handler';
import { requestHasBody } from '../proxy/http2-request';
import { requestIdFrom, upstreamRequestHeaders } from '../proxy/headers';
import { normalizePeerAddress } from '../core/peer-address';
import { clientCertificateSans } from '../proxy/peer-certificate';
import { decideAccess } from '../policy/access';
import { authenticatorOf } from '../auth/authenticator';
import { insertHeader, removeHeaders } from '../auth/forwarded-headers';
import { escapedSlashOutcome } from '../proxy/escaped-slashes';
import { redirectLocation } from '../policy/redirect';
import { checkRequest } from '../proxy/request-guard';
import { localAnswerBodyBytes, sendDirectResponse, sendError, sendRedirect } from '../proxy/respond';
import { responseOnSocket } from '../proxy/socket-response';
import type { ListenerIdentity, ProxyServices, StateHolder } from '../proxy/state';

/** The signature of an http/https server's 'upgrade' event. */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/**
 * The listener's entry point for requests carrying `Upgrade` (any server that emits
 * 'upgrade' the way node:http does: http, https, http2 with allowHTTP1).
 *
 * `Upgrade: websocket` on a GET is routed like any request (the same route table, the same
 * X-Forwarded-* and x-request-id policy) and tunnelled to the route's cluster through the
 * route's tunnel chain (src/pipeline/compose.ts: the route's rate limit, deadline, breaker,
 * concurrency, retry and host rewrite, as for its HTTP requests). Any other upgrade (h2c, ...) is not switched: the request is
 * served as an ordinary one by the listener's request handler, as Node would have done
 * without an 'upgrade' listener.
 */
export function createUpgradeHandler(
  listener: ListenerIdentity,
  holder: StateHolder,
  services: ProxyServices,
  websockets: WebSocketProxy,
  handleRequest: RequestHandler,
  clientCert?: ClientCertLookup,
): UpgradeHandler {
  return function handleUpgrade(req, duplex, head) {
    const startedAt = performance.now();
    // node:http and node:https hand over the connection's net.Socket / tls.TLSSocket.
    const socket = duplex as Socket;
    if (!isWebSocketUpgrade(req)) {
      serveWithoutUpgrade(req, socket, handleRequest);
      return;
    }
    const state = holder.current;
    const requestId = requestIdFrom(req.headers['x-request-id']);
    // Normalised exactly as for other requests (request-guard.ts): a tunnel is no way around a route.
    const checked = checkRequest(req, listener.config);
    if (!checked.ok) {
      const res = responseOnSocket(req, socket);
      sendError(res, checked.code, requestId, checked.reason, { close: true });
      recordRefusal(services, listener, req, res, requestId, startedAt, '', '', checked.code, 'DPE');
      return;
    }
    const { path, query } = checked;
    const escaped = escapedSlashOutcome(listener.config.escapedSlashes, path);
    if (escaped.kind !== 'pass') {
      // A redirect is no answer to an upgrade (browsers fail the handshake): both modes refuse.
      const res = responseOnSocket(req, socket);
      const reason = escaped.kind === 'reject' ? escaped.reason : `the request path holds an encoded slash; upgrade at ${escaped.path} instead`;
      sendError(res, 'BAD_REQUEST', requestId, reason);
      recordRefusal(services, listener, req, res, requestId, startedAt, '', '', 'BAD_REQUEST', 'DPE');
      return;
    }
    const routes = state.routes.get(listener.name) ?? [];
    const route = findRoute(routes, new RequestView('GET', path, checked.host, req));

    if (route === undefined) {
      const res = responseOnSocket(req, socket);
      sendError(res, 'NO_ROUTE', requestId, `no route of listener ${listener.name} matches GET ${path} (websocket upgrade)`);
      recordRefusal(services, listener, req, res, requestId, startedAt, '', '', 'NO_ROUTE', 'NR');
      return;
    }
    if (route.action === 'directResponse') {
      const res = responseOnSocket(req, socket);
      sendDirectResponse(res, route.directResponse, route.responseHeaders, requestId, false);
      recordRefusal(services, listener, req, res, requestId, startedAt, route.name, '', undefined, undefined);
      return;
    }
    if (route.action === 'redirect') {
      const res = responseOnSocket(req, socket);
      const url = { scheme: listener.proto, host: checked.host, authority: checked.authority, path, query };
      const location = redirectLocation(route.redirect, url, route.match.kind === 'prefix' ? route.match.value : undefined);
      if (location === undefined) sendError(res, 'BAD_REQUEST', requestId, `route ${route.name} redirects, and the request names no host`);
      else sendRedirect(res, route.redirect.status, location, route.responseHeaders, requestId);
      recordRefusal(services, listener, req, res, requestId, startedAt, route.name, '', location === undefined ? 'BAD_REQUEST' : undefined, location === undefined ? 'DPE' : undefined);
      return;
    }
    const cluster = state.clusters.get(route.cluster);
    if (cluster === undefined) {
      // Unreachable for a validated config; kept so a bug answers 503 instead of crashing.
      sendError(responseOnSocket(req, socket), 'NO_HEALTHY_UPSTREAM', requestId, `cluster ${route.cluster} is not loaded`);
      return;
    }

    if (route.access !== undefined) {
      // A tunnel is no way around a route's access rules.
      const decision = decideAccess(route.access, normalizePeerAddress(socket.remoteAddress), clientCertificateSans(socket));
      if (!decision.allowed) {
        const res = responseOnSocket(req, socket);
        sendError(res, 'ACCESS_DENIED', requestId, decision.reason);
        recordRefusal(services, listener, req, res, requestId, startedAt, route.name, route.cluster, 'ACCESS_DENIED', 'RBAC');
        return;
      }
    }
    const peer = peerFactsOf(socket, listener);
    if (checked.underscoreHeaders > 0) services.metrics.requestHeadersDropped.labels(listener.name, 'underscore').inc(checked.underscoreHeaders);
    const upstreamHeaders = upstreamRequestHeaders(
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
      },
      route.requestHeaders,
    );
    const upstreamPath =
      (route.rewritePrefix !== undefined && route.match.kind === 'prefix' ? rewritePath(route.match.value, route.rewritePrefix, path) : path) + query;
    const request = { req, socket, head, listener, route, cluster, services, websockets, requestId, upstreamPath, upstreamHeaders, startedAt, peer };
    const startTunnel = (): void => new Tunnel(request, chainFor(route, state.config.admin.recorder !== undefined).tunnel).start();
    const authenticator = authenticatorOf(route);
    if (authenticator === undefined) {
      startTunnel();
      return;
    }
    // A tunnel is no way around a route's authentication either.
    removeHeaders(upstreamHeaders, authenticator.strip);
    authenticator.check({ req, path: upstreamPath, requestId }, services.logger).then(
      (outcome) => {
        if (socket.destroyed) return;
        if (outcome.kind === 'pass') {
          for (const [name, value] of outcome.set) insertHeader(upstreamHeaders, name, value);
          startTunnel();
          return;
        }
        const res = responseOnSocket(req, socket);
        if (outcome.kind === 'deny') {
          sendError(res, outcome.code, requestId, outcome.message, { headers: outcome.headers });
          recordRefusal(services, listener, req, res, requestId, startedAt, route.name, route.cluster, outcome.code, 'UAEX');
        } else {
          res.writeHead(outcome.status, [...outcome.headers, 'content-length', String(outcome.body.length)]);
          res.end(outcome.body);
          recordRefusal(services, listener, req, res, requestId, startedAt, route.name, route.cluster, undefined, 'UAEX');
        }
      },
      (error: unknown) => {
        services.logger.error({ err: error, route: route.name }, 'authentication failed unexpectedly');
        if (!socket.destroyed) sendError(responseOnSocket(req, socket), 'AUTH_UNAVAILABLE', requestId);
      },
    );
  };
}

/** RFC 6455 §4.1: a GET whose Upgrade header lists `websocket`. */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  return asksWebSocketUpgrade(req.method, req.headers.upgrade);
}

/**
 * A non-WebSocket upgrade is answered as a plain HTTP/1.1 request on its own connection. A
 * body cannot be read any more (the server stopped parsing at the head), so such a request
 * is refused rather than forwarded without its body.
 */
function serveWithoutUpgrade(req: IncomingMessage, socket: Socket, handleRequest: RequestHandler): void {
  const res = responseOnSocket(req, socket);
  if (requestHasBody(req)) {
    sendError(res, 'BAD_REQUEST', requestIdFrom(req.headers['x-request-id']),
      `Upgrade: ${req.headers.upgrade ?? ''} with a request body is not supported; only websocket upgrades are switched`,
      { close: true });
    return;
  }
  handleRequest(req, res);
}

function recordRefusal(
  services: ProxyServices,
  listener: ListenerIdentity,
  req: IncomingMessage,
  res: ServerResponse,
  requestId: string,
  startedAt: number,
  route: string,
  cluster: string,
  error: ErrorCode | undefined,
  flags: string | undefined,
): void {
  const status = res.statusCode;
  services.metrics.websocketUpgrades.labels(listener.name, route, cluster, String(status)).inc();
  const answer = { ...localAnswer(req, listener, requestId, status, route, cluster, error), bytesOut: localAnswerBodyBytes(res) };
  const entry = accessLogEntry(answer, performance.now() - startedAt, flags, undefined);
  entry.upgrade = 'websocket';
  services.accessLog.write(entry);
}
