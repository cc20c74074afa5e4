import type { AddressInfo } from 'node:net';
import net from 'node:net';

export interface EchoServer {
  readonly port: number;
  /** TCP connections accepted. */
  readonly connections: number;
  /** Connections that closed. */
  readonly closed: number;
  close(): Promise<void>;
}

/** A TCP echo server on 127.0.0.1: every byte comes back, and a FIN is answered with a FIN. */
export async function startEcho(): Promise<EchoServer> {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  let closed = 0;
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => {
      sockets.delete(socket);
      closed++;
    });
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    get connections() {
      return connections;
    },
    get closed() {
      return closed;
    },
    close: () =>
      new Promise<void>((resolve) => {
        sockets.forEach((s) => s.destroy());
        server.close(() => resolve());
      }),
  };
}
