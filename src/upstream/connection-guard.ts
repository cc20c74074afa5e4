import type { Socket } from 'node:net';
import { buildConnector, errors } from 'undici';

/**
 * What the sidecar needs to know about its pooled HTTP/1 connections to the app, learned from
 * the sockets themselves (undici's handler API says nothing about the connection a request
 * went over). The Pool's `connect` hook hands every new socket to `guardedConnector`, which
 * adds one 'error' listener before undici adds its own; nothing runs per request.
 *
 * Two facts come out of it:
 *  - whether a connection that failed had already carried a response (it was reused): a
 *    reset there, before any byte of the new response, is the stale keep-alive race, and the
 *    request never reached the app (see policy/retry.ts, mayRetryStaleConnection);
 *  - whether a connection received response bytes while no request was waiting for one
 *    (stray bytes: a second response, or a body longer than its framing said). undici
 *    destroys such a connection when the bytes arrive (or before it reuses it); the guard
 *    reports it so the endpoint stops reusing connections (cluster.ts) and it is counted.
 */

/** bytesRead of the socket when it failed, for errors that do not carry undici's socket info. */
const bytesReadAtFailure = new WeakMap<Error, number>();

/** undici's message for response bytes that arrived while no request was in flight on the connection. */
const UNSOLICITED_RESPONSE_MESSAGE = 'bad response';

export type Connector = buildConnector.connector;

/**
 * undici's own connector (the one Pool would build from `connectTimeout`) with the guard's
 * listener on each socket. `onStrayBytes` runs when a connection is destroyed for bytes no
 * request asked for.
 */
export function guardedConnector(connectTimeoutMs: number, onStrayBytes: () => void, base?: Connector): Connector {
  // `base`: a TLS connector for https:// endpoints (upstream-tls.ts).
  const connect = base ?? buildConnector({ timeout: connectTimeoutMs });
  return (options, callback) =>
    connect(options, (error, socket) => {
      // (undici's callback type is a union of two signatures; on a failure the socket is
      // undefined, not null as the type says.)
      if (error !== null && error !== undefined) {
        callback(error, null);
        return;
      }
      watch(socket as Socket, onStrayBytes);
      callback(null, socket);
    });
}

function watch(socket: Socket, onStrayBytes: () => void): void {
  socket.on('error', (error: NodeJS.ErrnoException) => {
    if (error instanceof errors.SocketError) {
      if (error.message === UNSOLICITED_RESPONSE_MESSAGE) onStrayBytes();
      return; // undici's socket errors carry their own socket info
    }
    bytesReadAtFailure.set(error, socket.bytesRead);
    // A fatal TLS alert from the upstream (TLS 1.3 "certificate required" arrives after the
    // handshake, once the request is on its way). The TLS socket stays open for the peer's
    // FIN, and undici's 'end' handler would then replace this error with "other side closed"
    // (a reset): destroyed now, it ends with this error, which names the reason.
    if (isTlsAlert(error)) socket.destroy();
  });
}

function isTlsAlert(error: NodeJS.ErrnoException): boolean {
  return typeof error.code === 'string' && error.code.startsWith('ERR_SSL_') && error.code.includes('_ALERT_');
}

/**
 * Whether the connection an attempt failed on had received bytes before: with one request at
 * a time per connection (pipelining 1), a connection that read bytes carried an earlier
 * response, i.e. it was reused from the pool. The caller checks that no byte of the failed
 * attempt's own response arrived. False when nothing says so (a connect failure, an abort).
 */
export function failedOnReusedConnection(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error instanceof errors.SocketError) return (error.socket?.bytesRead ?? 0) > 0;
  const bytesRead = bytesReadAtFailure.get(error) ?? (error.cause instanceof Error ? bytesReadAtFailure.get(error.cause) : undefined);
  return bytesRead !== undefined && bytesRead > 0;
}
