import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * After one side of a connection pair has gone, the other gets this long to close on its own
 * once it has nothing left to flush; then it is destroyed. A peer still reading what is left
 * gets more time as long as it makes progress. Bounds every socket's lifetime once its
 * counterpart is gone, whatever the peer at the other end does.
 */
export const SOCKET_CLOSE_LINGER_MS = 1_000;

/** Sockets (and HTTP/2 streams) closeSocketGracefully already watches. */
const lingering = new WeakSet<Duplex>();

/**
 * Ends `socket` (flushing pending writes, then FIN) and destroys it if it is still open
 * SOCKET_CLOSE_LINGER_MS after its last flushing progress. Safe to call more than once. An
 * HTTP/2 stream (a CONNECT tunnel) is ended the same way: END_STREAM, then a reset if it lingers.
 */
export function closeSocketGracefully(socket: Duplex): void {
  if (socket.destroyed) return;
  if (!socket.writableEnded) socket.end();
  if (lingering.has(socket)) return;
  lingering.add(socket);
  let pending = socket.writableLength;
  const timer = setTimeout(() => {
    if (!socket.writableFinished && socket.writableLength < pending) {
      pending = socket.writableLength;
      timer.refresh();
      return;
    }
    socket.destroy();
  }, SOCKET_CLOSE_LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/**
 * A ServerResponse on a socket the HTTP server has handed over ('upgrade' event), so the
 * sidecar's usual responders (sendError, sendDirectResponse, a proxied exchange) can answer
 * an upgrade request that is not turned into a tunnel. The server no longer manages this
 * socket: the response relays the socket's 'drain' itself (backpressure), and the connection
 * is closed once the response is written. The response emits 'close' when the socket closes.
 */
export function responseOnSocket(req: IncomingMessage, socket: Socket): ServerResponse {
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  // The server removed its own error listener when it handed the socket over.
  socket.on('error', () => socket.destroy());
  const onDrain = (): void => {
    if (!res.writableEnded) res.emit('drain');
  };
  socket.on('drain', onDrain);
  res.once('finish', () => {
    socket.off('drain', onDrain);
    closeSocketGracefully(socket);
  });
  return res;
}
