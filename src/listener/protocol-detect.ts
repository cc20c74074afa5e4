import type { Socket } from 'node:net';

/** The HTTP/2 client connection preface (RFC 9113 §3.4); prior-knowledge clients open with it. */
export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** What a plain listener serves on one port. */
export interface DetectedProtocols {
  readonly http1: boolean;
  readonly h2c: boolean;
}

export type DetectionOutcome = 'http1' | 'h2c' | 'refused' | 'timeout';

/** Where a connection goes once its first bytes are read. */
export interface ProtocolRoutes {
  /** Hands the socket (its first bytes pushed back) to the HTTP/1 server. */
  readonly http1: (socket: Socket) => void;
  /** Hands the socket (its first bytes pushed back) to the HTTP/2 server. */
  readonly h2c: (socket: Socket) => void;
  /** Told of connections closed here: a protocol the listener does not serve, or no decision in time. */
  readonly closed?: (outcome: 'refused' | 'timeout') => void;
}

/**
 * Whether `bytes` (the first bytes of a connection) are, so far, the HTTP/2 preface:
 * 'h2c' once all of it arrived, 'http1' at the first byte that differs (no HTTP/1 method
 * starts "PRI * HTTP/2.0"), 'undecided' while a prefix of it is all there is.
 */
export function classifyPreface(bytes: Buffer): 'h2c' | 'http1' | 'undecided' {
  const n = Math.min(bytes.length, HTTP2_PREFACE.length);
  if (bytes.compare(HTTP2_PREFACE, 0, n, 0, n) !== 0) return 'http1';
  return n === HTTP2_PREFACE.length ? 'h2c' : 'undecided';
}

/**
 * Reads a new connection's first bytes and hands it to the server of its protocol, with
 * those bytes pushed back so that server parses them as if it had read them itself. A
 * client that stops inside the preface holds only its own connection: it is closed after
 * `timeoutMs` (the listener's headersTimeout), and others are served meanwhile.
 */
export function detectProtocol(socket: Socket, protocols: DetectedProtocols, timeoutMs: number, routes: ProtocolRoutes): void {
  let received: Buffer | undefined;
  const timer = setTimeout(() => {
    stop();
    routes.closed?.('timeout');
    socket.destroy();
  }, timeoutMs);
  const stop = (): void => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('close', stop);
  };
  const onData = (chunk: Buffer): void => {
    received = received === undefined ? chunk : Buffer.concat([received, chunk]);
    const protocol = classifyPreface(received);
    if (protocol === 'undecided') return;
    stop();
    socket.pause();
    socket.unshift(received);
    if (!protocols[protocol]) {
      routes.closed?.('refused');
      socket.destroy();
      return;
    }
    if (protocol === 'h2c') {
      routes.h2c(socket);
      return;
    }
    routes.http1(socket);
    // Node's HTTP/1 server reads the socket's handle directly from here on; the bytes pushed
    // back wait in the stream's buffer and reach its parser as 'data' once the stream flows.
    socket.resume();
  };
  socket.on('data', onData);
  socket.once('close', stop);
}
