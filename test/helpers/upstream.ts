import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Upstream {
  readonly server: http.Server;
  readonly port: number;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  close(): Promise<void>;
}

/** A real HTTP app on 127.0.0.1:0 with a scripted handler; close() also cuts kept-alive sockets. */
export async function startUpstream(
  handler: http.RequestListener,
  options: http.ServerOptions & { keepAliveTimeout?: number } = {},
): Promise<Upstream> {
  const server = http.createServer(options, handler);
  if (options.keepAliveTimeout !== undefined) server.keepAliveTimeout = options.keepAliveTimeout;
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on: bound once, then released. */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** One request as the app received it. */
export interface ReceivedRequest {
  readonly method: string;
  readonly url: string;
  /** Node's lower-cased header map. */
  readonly headers: http.IncomingHttpHeaders;
  /** Names and values as they arrived, in order. */
  readonly rawHeaders: readonly string[];
  readonly body: string;
}

export interface RecordingUpstream extends Upstream {
  /** Every request the app received, complete with its body, in order of arrival. */
  readonly received: ReceivedRequest[];
}

/** An app that records each request and answers 200 `app:<url>`. */
export async function startRecordingUpstream(): Promise<RecordingUpstream> {
  const received: ReceivedRequest[] = [];
  const upstream = await startUpstream((req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body });
      res.end(`app:${req.url}`);
    });
  });
  return { ...upstream, received };
}
