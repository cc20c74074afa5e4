import net from 'node:net';

export interface RawExchange {
  /** Everything the server sent, as latin1 text. */
  readonly text: string;
  /** Status codes of every response in `text`, in order. */
  readonly statuses: number[];
  /** How the connection ended: the server closed it, or the bound ran out and the client cut it. */
  readonly closedBy: 'server' | 'bound';
}

/**
 * Writes raw bytes to a listener and collects the answer until the server closes the
 * connection. `boundMs` only keeps a failing test from hanging: a test that expects the
 * server to close asserts `closedBy === 'server'`.
 */
export function rawExchange(port: number, bytes: string | Buffer, boundMs = 10_000): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closedBy: 'server' | 'bound' = 'server';
    const bound = setTimeout(() => {
      closedBy = 'bound';
      socket.destroy();
    }, boundMs);
    socket.on('connect', () => socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ECONNRESET' && error.code !== 'EPIPE') reject(error);
    });
    socket.on('close', () => {
      clearTimeout(bound);
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ text, statuses: statusesOf(text), closedBy });
    });
  });
}

/** Status codes of the HTTP/1.1 responses in `text`, read one after the other by their framing. */
export function statusesOf(text: string): number[] {
  const statuses: number[] = [];
  let at = 0;
  while (at < text.length) {
    const status = /^HTTP\/1\.[01] (\d{3}) /.exec(text.slice(at, at + 13));
    const headersEnd = text.indexOf('\r\n\r\n', at);
    if (status === null || headersEnd === -1) break;
    statuses.push(Number(status[1]));
    const head = text.slice(at, headersEnd).toLowerCase();
    at = headersEnd + 4;
    const length = /\r\ncontent-length: *(\d+)/.exec(head);
    if (length !== null) {
      at += Number(length[1]);
    } else if (/\r\ntransfer-encoding: *chunked/.test(head)) {
      for (;;) {
        const lineEnd = text.indexOf('\r\n', at);
        if (lineEnd === -1) return statuses;
        const size = parseInt(text.slice(at, lineEnd), 16);
        at = lineEnd + 2 + size + 2;
        if (size === 0) break;
      }
    } else if (Number(status[1]) >= 200 && Number(status[1]) !== 204 && Number(status[1]) !== 304) {
      break; // the body runs to the end of the connection
    }
  }
  return statuses;
}

/** Opens a TCP connection and resolves once it is established. */
export function connect(port: number, options: { allowHalfOpen?: boolean } = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: options.allowHalfOpen ?? false });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Resolves when the socket closes, with whether the server ended it within `boundMs`. */
export function closed(socket: net.Socket, boundMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (socket.destroyed) {
      resolve(true);
      return;
    }
    socket.on('error', () => {});
    // A paused socket never reads the server's FIN, so it would never see the close.
    socket.resume();
    const bound = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, boundMs);
    socket.once('close', () => {
      clearTimeout(bound);
      resolve(true);
    });
  });
}
