import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AdminConfig } from '../config/types';
import { ERROR_STATUS, errorBody } from '../core/errors';
import type { Logger } from '../telemetry/logger';
import { AdminConnectionGuard, type AdminConnectionObserver } from './connection-guard';
import { adminRequestRefusal } from './request-origin';
import { DASHBOARD_PATHS } from './dashboard/paths';

export interface AdminResponse {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

export type AdminHandler = (req: http.IncomingMessage, body: string) => AdminResponse | Promise<AdminResponse>;

/** `METHOD /path` → handler, e.g. `GET /ready`. */
export type AdminRoutes = ReadonlyMap<string, AdminHandler>;

/**
 * Endpoints a bearer token does not guard, nor the Host and Origin checks (for GET and HEAD):
 * probes must work without secrets, and kubelet sends whatever Host it was configured with.
 */
const OPEN_PATHS = new Set(['/live', '/ready']);
const PROBE_METHODS = new Set(['GET', 'HEAD']);
const MAX_ADMIN_BODY_BYTES = 64 * 1024;
/** The admin listener may face a network (with a token): slow clients must not pin it. */
const ADMIN_HEADERS_TIMEOUT_MS = 5_000;
const ADMIN_REQUEST_TIMEOUT_MS = 10_000;
const ADMIN_TIMEOUT_CHECK_INTERVAL_MS = 1_000;
/** Beyond it, a new connection closes the oldest idle one (see AdminConnectionGuard): a probe always gets in. */
const ADMIN_MAX_CONNECTIONS = 256;
/** One client (a scraper, a script in a loop, an attacker) cannot push out everyone else's kept-alive connections. */
const ADMIN_MAX_CONNECTIONS_PER_PEER = 64;

/**
 * Compares the Authorization header with the expected one in constant time: both sides are
 * hashed first, so neither the content nor the length of the token leaks through timing.
 */
export function bearerMatches(authorization: string | undefined, expectedDigest: Buffer): boolean {
  const actual = createHash('sha256').update(authorization ?? '').digest();
  return timingSafeEqual(actual, expectedDigest);
}

export function bearerDigest(token: string): Buffer {
  return createHash('sha256').update(`Bearer ${token}`).digest();
}

export function json(status: number, value: unknown): AdminResponse {
  return { status, contentType: 'application/json', body: JSON.stringify(value, null, 2) + '\n' };
}

export function text(status: number, body: string, contentType = 'text/plain; charset=utf-8'): AdminResponse {
  return { status, contentType, body };
}

/** The admin listener: loopback by default, small JSON/text endpoints, never proxied traffic. */
export class AdminServer {
  readonly server: http.Server;
  private tokenDigest: Buffer | undefined;

  /** `onConnectionClosed` hears of each connection the guard closes to keep room (metrics). */
  constructor(
    private config: AdminConfig,
    private readonly routes: AdminRoutes,
    private readonly logger: Logger,
    onConnectionClosed: AdminConnectionObserver = () => {},
  ) {
    this.tokenDigest = config.token === undefined ? undefined : bearerDigest(config.token);
    this.server = http.createServer(
      {
        headersTimeout: ADMIN_HEADERS_TIMEOUT_MS,
        requestTimeout: ADMIN_REQUEST_TIMEOUT_MS,
        connectionsCheckingInterval: ADMIN_TIMEOUT_CHECK_INTERVAL_MS,
      },
      (req, res) => this.handle(req, res),
    );
    // No server.maxConnections: Node would refuse a probe at the limit before the guard could make room.
    new AdminConnectionGuard({ maxConnections: ADMIN_MAX_CONNECTIONS, maxConnectionsPerPeer: ADMIN_MAX_CONNECTIONS_PER_PEER }, onConnectionClosed).attach(
      this.server,
    );
    this.server.on('clientError', (_error, socket) => socket.destroy());
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void =>
        reject(new Error(`admin listener cannot bind ${this.config.host}:${this.config.port}: ${error.message}`, { cause: error }));
      this.server.once('error', onError);
      this.server.listen({ host: this.config.host, port: this.config.port }, () => {
        this.server.off('error', onError);
        this.server.on('error', (error) => this.logger.error({ err: error }, 'admin listener error'));
        resolve();
      });
    });
  }

  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address !== null ? address.port : this.config.port;
  }

  /** A reload changed the token (the address is fixed: a new address gets a new AdminServer). */
  update(config: AdminConfig): void {
    this.config = config;
    this.tokenDigest = config.token === undefined ? undefined : bearerDigest(config.token);
  }

  /** Stops accepting and lets the requests in flight (e.g. the `POST /reload` that moved the admin listener) finish. */
  closeGracefully(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    const handler = this.handlerFor(req.method ?? '', path);
    const refusal = OPEN_PATHS.has(path) && PROBE_METHODS.has(req.method ?? '') ? undefined : adminRequestRefusal(req.headers, this.config.host);
    if (refusal !== undefined) {
      this.refuse(res, refusal);
      return;
    }
    if (this.tokenDigest !== undefined && !OPEN_PATHS.has(path) && !DASHBOARD_PATHS.has(path) && !bearerMatches(req.headers.authorization, this.tokenDigest)) {
      this.send(res, json(401, { error: 'UNAUTHORIZED', message: 'the admin listener requires "Authorization: Bearer <admin.token>"' }));
      return;
    }
    if (handler === undefined) {
      const allowed = this.methodsOf(path);
      if (allowed.length > 0) {
        // RFC 9110 §15.5.6: a 405 lists the methods the resource supports in Allow.
        const message = `use ${allowed.map((method) => `${method} ${path}`).join(' or ')}`;
        this.send(res, json(405, { error: 'METHOD_NOT_ALLOWED', message }), { allow: allowed.join(', ') });
      } else {
        this.send(res, json(404, { error: 'NOT_FOUND', message: `no admin endpoint ${path}`, endpoints: [...this.routes.keys()] }));
      }
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_ADMIN_BODY_BYTES) req.destroy();
      else chunks.push(chunk);
    });
    req.on('end', () => {
      Promise.resolve()
        .then(() => handler(req, Buffer.concat(chunks).toString('utf8')))
        .then((response) => this.send(res, response))
        .catch((error: unknown) => {
          this.logger.error({ err: error, path }, 'admin endpoint failed');
          this.send(res, json(500, { error: 'INTERNAL', message: error instanceof Error ? error.message : String(error) }));
        });
    });
    req.on('error', () => res.destroy());
  }

  /**
   * The route for `METHOD path`. HEAD is served wherever GET is (RFC 9110 §9.3.2): the GET
   * handler runs and Node leaves the body out of a HEAD response, content-length kept.
   */
  private handlerFor(method: string, path: string): AdminHandler | undefined {
    return this.exactOrItem(method, path) ?? (method === 'HEAD' ? this.exactOrItem('GET', path) : undefined);
  }

  /** `METHOD /path`, or `METHOD /collection/*` for `/collection/{item}` (one segment). */
  private exactOrItem(method: string, path: string): AdminHandler | undefined {
    const exact = this.routes.get(`${method} ${path}`);
    if (exact !== undefined) return exact;
    const slash = path.lastIndexOf('/');
    return slash > 0 && slash < path.length - 1 ? this.routes.get(`${method} ${path.slice(0, slash)}/*`) : undefined;
  }

  /** The methods `path` answers, HEAD included where GET is; empty for an unknown path. */
  private methodsOf(path: string): string[] {
    const methods: string[] = [];
    const slash = path.lastIndexOf('/');
    const item = slash > 0 && slash < path.length - 1 ? `${path.slice(0, slash)}/*` : undefined;
    for (const key of this.routes.keys()) {
      const space = key.indexOf(' ');
      const keyPath = key.slice(space + 1);
      if (keyPath === path || keyPath === item) methods.push(key.slice(0, space));
    }
    if (methods.includes('GET') && !methods.includes('HEAD')) methods.splice(methods.indexOf('GET') + 1, 0, 'HEAD');
    return methods;
  }

  /** 403 ADMIN_FORBIDDEN, in the sidecar's error format; the connection closes (a browser's request is not a client to keep). */
  private refuse(res: http.ServerResponse, message: string): void {
    const requestId = randomUUID();
    const body = errorBody('ADMIN_FORBIDDEN', message, requestId) + '\n';
    res.writeHead(ERROR_STATUS.ADMIN_FORBIDDEN, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      'x-sidecar-error': 'ADMIN_FORBIDDEN',
      'x-request-id': requestId,
      connection: 'close',
    });
    res.end(body);
  }

  private send(res: http.ServerResponse, response: AdminResponse, extraHeaders: Readonly<Record<string, string>> = {}): void {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(response.status, {
      'content-type': response.contentType,
      'content-length': Buffer.byteLength(response.body),
      'cache-control': 'no-store',
      ...extraHeaders,
    });
    res.end(response.body);
  }
}
