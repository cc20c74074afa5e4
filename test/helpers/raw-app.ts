import net from 'node:net';
import type { AddressInfo } from 'node:net';

/** What the scripted app does with a request: bytes to write, then keep the connection, end it, reset it, or go silent. */
export interface RawReply {
  readonly write?: string;
  readonly then?: 'keep-alive' | 'end' | 'reset' | 'hang';
}

export type RawScript = (path: string) => RawReply | ((socket: net.Socket) => void);

export interface RawApp {
  readonly url: string;
  /** Request lines received, in order. */
  readonly requests: string[];
  /** Whole request heads (request line and header lines, without the blank line), in order. */
  readonly heads: string[];
  close(): Promise<void>;
}

/**
 * An "app" that speaks HTTP/1.1 by hand, so it can answer with bytes no real server would
 * send. It reads bodiless requests only (each ends at the blank line).
 */
export async function startRawApp(script: RawScript): Promise<RawApp> {
  const requests: string[] = [];
  const heads: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      for (let end = buffered.indexOf('\r\n\r\n'); end !== -1; end = buffered.indexOf('\r\n\r\n')) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        const requestLine = head.split('\r\n')[0];
        requests.push(requestLine);
        heads.push(head);
        const reply = script(requestLine.split(' ')[1] ?? '/');
        if (typeof reply === 'function') {
          reply(socket);
          continue;
        }
        if (reply.write !== undefined) socket.write(Buffer.from(reply.write, 'latin1'));
        if (reply.then === 'end') socket.end();
        else if (reply.then === 'reset') socket.resetAndDestroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    heads,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
