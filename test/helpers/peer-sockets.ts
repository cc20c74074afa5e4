/**
 * Raw TCP clients from chosen loopback addresses (127.0.0.2, 127.0.0.3...: Linux routes all
 * of 127.0.0.0/8 to lo), so a test can be several peers at once.
 */
import net from 'node:net';
import { statusesOf } from './raw';

/** Opens a connection to 127.0.0.1:port from `localAddress`; resolves once established. */
export function connectFrom(port: number, localAddress = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    socket.once('connect', () => {
      socket.off('error', reject);
      // The server may close it at any time: that is what the tests look for.
      socket.on('error', () => {});
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Opens `count` connections from `localAddress`, one after the other (accept order is connect order). */
export async function holdConnections(port: number, count: number, localAddress = '127.0.0.1'): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  for (let i = 0; i < count; i++) sockets.push(await connectFrom(port, localAddress));
  return sockets;
}

export interface PeerAnswer {
  /** The status of the first response, or undefined when the connection closed without one. */
  readonly status: number | undefined;
  readonly text: string;
}

/**
 * Sends `GET path` with `Connection: close` on a new connection from `localAddress` and
 * reads until the server closes; a connection refused or reset gives `status: undefined`.
 */
export function getFrom(port: number, path: string, localAddress = '127.0.0.1', headers = 'host: localhost\r\n', boundMs = 10_000): Promise<PeerAnswer> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    const chunks: Buffer[] = [];
    const bound = setTimeout(() => socket.destroy(), boundMs);
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\n${headers}connection: close\r\n\r\n`));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(bound);
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ status: statusesOf(text)[0], text });
    });
  });
}

/** Sends `GET path` on an open keep-alive connection; resolves with the status once the whole (Content-Length framed) response is in. */
export function getOn(socket: net.Socket, path: string, headers = 'host: localhost\r\n', boundMs = 10_000): Promise<number | undefined> {
  return new Promise((resolve) => {
    let text = '';
    const done = (status: number | undefined): void => {
      clearTimeout(bound);
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(status);
    };
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      const headersEnd = text.indexOf('\r\n\r\n');
      if (headersEnd < 0) return;
      const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, headersEnd));
      if (length !== null && text.length < headersEnd + 4 + Number(length[1])) return;
      done(statusesOf(text)[0]);
    };
    const onClose = (): void => done(undefined);
    const bound = setTimeout(() => done(undefined), boundMs);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(`GET ${path} HTTP/1.1\r\n${headers}\r\n`);
  });
}
