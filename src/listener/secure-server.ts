import http2 from 'node:http2';
import type { ListenerConfig } from '../config/types';
import type { RequestHandler } from './handler';
import type { TlsContextProvider } from '../tls/context';
import { timeoutCheckIntervalMs } from './timeouts';
import { http1HeaderCap, http2HeaderPairsCap } from './header-limits';

/**
 * Streams one client connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
 * Node's default is unlimited; nginx uses 128. Each stream holds an upstream request, so
 * this bounds what a single connection can pin.
 */
export const HTTP2_MAX_CONCURRENT_STREAMS = 128;

/**
 * The server of a TLS listener: node:http2 with `allowHTTP1`, so ALPN offers `h2` and
 * `http/1.1` and both reach the same request handler. An https.Server would be simpler
 * but would leave HTTP/2 clients (gRPC-web gateways, browsers, curl --http2) on HTTP/1.1.
 *
 * Limits match a plain listener's: for HTTP/1.1 connections Node's HTTP/1 server code runs
 * on this server and reads the same properties as on an http.Server; for HTTP/2 the header
 * limit becomes SETTINGS_MAX_HEADER_LIST_SIZE, the keep-alive timeout closes idle sessions
 * and the request timeout bounds the time to receive a request (Http2Sessions).
 */
export function createSecureServer(config: ListenerConfig, tls: TlsContextProvider, handler: RequestHandler): http2.Http2SecureServer {
  const server = http2.createSecureServer({
    ...tls.serverOptions(),
    allowHTTP1: true,
    // A connection must finish its handshake as fast as a plain one must send its headers.
    handshakeTimeout: config.headersTimeoutMs,
    settings: {
      maxHeaderListSize: config.maxHeaderBytes,
      maxConcurrentStreams: HTTP2_MAX_CONCURRENT_STREAMS,
    },
    maxHeaderListPairs: http2HeaderPairsCap(config),
  });
  // Read by Node's HTTP/1 connection code for HTTP/1.1 clients of this server.
  Object.assign(server, {
    maxHeaderSize: config.maxHeaderBytes,
    maxHeadersCount: http1HeaderCap(config),
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    connectionsCheckingInterval: timeoutCheckIntervalMs(config),
    // The request guard answers a missing Host with the sidecar's own 400 (x-sidecar-error).
    requireHostHeader: false,
  });
  // With allowHTTP1 the handler receives http.IncomingMessage/ServerResponse for HTTP/1.1
  // and the compatibility Http2ServerRequest/Response for HTTP/2; the proxy reads the
  // latter through src/proxy/http2-request.ts where the protocols differ.
  server.on('request', handler as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
  tls.attach(server);
  return server;
}

/**
 * The HTTP/2 server of a plain listener with `h2c` in its protocols: HTTP/2 with prior
 * knowledge (no TLS, no Upgrade dance). It never listens itself: the listener's socket reads
 * each connection's first bytes and hands those that open with the HTTP/2 preface to it
 * (protocol-detect.ts). Same limits as the HTTP/2 side of a TLS listener.
 */
export function createH2cServer(config: ListenerConfig, handler: RequestHandler): http2.Http2Server {
  const server = http2.createServer({
    settings: {
      maxHeaderListSize: config.maxHeaderBytes,
      maxConcurrentStreams: HTTP2_MAX_CONCURRENT_STREAMS,
    },
    maxHeaderListPairs: http2HeaderPairsCap(config),
  });
  server.on('request', handler as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
  return server;
}

/**
 * A client that resets this many streams before their response started, and more than it
 * lets complete, is closed with GOAWAY ENHANCE_YOUR_CALM (HTTP/2 rapid reset, CVE-2023-44487).
 * Envoy closes at 250 premature resets, or from 500 streams on when half of them were reset;
 * nghttp2's own guard only limits RST_STREAM frames to a burst of 1000. 100 leaves any real
 * client (a browser cancels a handful of streams when the user navigates away) far below it
 * while an attacker is cut off after 100 requests, whatever it does next on that connection.
 */
export const HTTP2_PREMATURE_RESETS_MAX = 100;

/** What a session that was closed for premature resets had done; for the log and the metric. */
export interface PrematureResetClose {
  readonly remoteAddress: string | undefined;
  /** Streams the client reset before their response started. */
  readonly prematureResets: number;
  /** Streams closed on the session, those included. */
  readonly streams: number;
}

/** One session's stream counts. */
interface SessionStreams {
  open: number;
  closed: number;
  prematureResets: number;
  /** GOAWAY ENHANCE_YOUR_CALM sent; the session is cut on the next turn. */
  calmed: boolean;
}

/**
 * The HTTP/2 sessions of one server: an idle session (no open stream for the keep-alive
 * timeout) is closed with GOAWAY, a stream still receiving its request after the request
 * timeout is cancelled, a session whose client resets more streams than it completes is
 * closed with GOAWAY ENHANCE_YOUR_CALM, and the listener closes (gracefully) or destroys them
 * all on stop.
 */
export class Http2Sessions {
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly streams = new WeakMap<http2.Http2Session, SessionStreams>();
  private closing = false;

  /** `settings` is read for every new session and stream, so in-place config updates reach them. */
  constructor(
    server: http2.Http2SecureServer | http2.Http2Server,
    settings: () => Pick<ListenerConfig, 'keepAliveTimeoutMs' | 'requestTimeoutMs'>,
    private readonly onPrematureResetClose: (facts: PrematureResetClose) => void = () => {},
  ) {
    server.on('session', (session: http2.ServerHttp2Session) => {
      if (this.closing) {
        session.close();
        return;
      }
      this.sessions.add(session);
      const counts: SessionStreams = { open: 0, closed: 0, prematureResets: 0, calmed: false };
      this.streams.set(session, counts);
      session.once('close', () => this.sessions.delete(session));
      // The session emits 'timeout' after this much silence; it re-arms on traffic.
      session.setTimeout(settings().keepAliveTimeoutMs);
      session.on('timeout', () => {
        if (counts.open === 0) session.close();
      });
    });
    server.on('stream', (stream: http2.ServerHttp2Stream) => {
      const session = stream.session;
      const counts = session === undefined ? undefined : this.streams.get(session);
      if (counts !== undefined) counts.open++;
      let receiving: NodeJS.Timeout | undefined;
      const { requestTimeoutMs } = settings();
      if (requestTimeoutMs > 0 && !stream.endAfterHeaders) {
        receiving = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), requestTimeoutMs);
        stream.once('end', () => clearTimeout(receiving));
      }
      stream.once('close', () => {
        clearTimeout(receiving);
        if (counts === undefined || session === undefined) return;
        counts.open--;
        counts.closed++;
        // Reset before any response header: the client asked for work and dropped it at once.
        if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR && !stream.headersSent) {
          counts.prematureResets++;
          if (counts.prematureResets >= HTTP2_PREMATURE_RESETS_MAX && counts.prematureResets * 2 > counts.closed) this.calm(session, counts);
        }
      });
    });
  }

  /** Closes a session that resets more streams than it completes: GOAWAY ENHANCE_YOUR_CALM, then the connection. */
  private calm(session: http2.Http2Session, counts: SessionStreams): void {
    if (counts.calmed || session.destroyed) return;
    counts.calmed = true;
    this.onPrematureResetClose({ remoteAddress: session.socket?.remoteAddress, prematureResets: counts.prematureResets, streams: counts.closed });
    // GOAWAY with the code, then the connection is cut on the next turn of the event loop
    // (once the frame is written); the streams still open, the attacker's, are cut with it.
    // (close() would wait for those streams; destroy() alone sends GOAWAY NO_ERROR.)
    session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    setImmediate(destroySession, session);
  }

  /** GOAWAY to every client: streams in flight finish, no new ones start. */
  close(): void {
    this.closing = true;
    for (const session of this.sessions) session.close();
  }

  destroy(): void {
    this.closing = true;
    for (const session of this.sessions) session.destroy();
  }
}

function destroySession(session: http2.Http2Session): void {
  session.destroy();
}
