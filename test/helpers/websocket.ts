import type { IncomingMessage } from 'node:http';
import { once } from 'node:events';
import WebSocket, { WebSocketServer, type ClientOptions } from 'ws';
import { startUpstream, type Upstream } from './upstream';

export interface WsEchoApp {
  readonly upstream: Upstream;
  readonly wss: WebSocketServer;
  /** Handshake requests as the app received them, in order. */
  readonly handshakes: IncomingMessage[];
  /** Sockets the app's HTTP server holds open right now. */
  openSockets(): Promise<number>;
  close(): Promise<void>;
}

/** Text message that makes the echo app close the connection (code 1001). */
export const APP_CLOSE_MESSAGE = '__close__';

/**
 * A `ws` echo app on 127.0.0.1:0: every message comes back with its type (text/binary), but
 * APP_CLOSE_MESSAGE, which makes the app close; plain HTTP requests get 200 `plain`.
 */
export async function startWsEchoApp(): Promise<WsEchoApp> {
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('plain');
  });
  const wss = new WebSocketServer({ server: upstream.server, handleProtocols: (protocols) => (protocols.has('chat.v2') ? 'chat.v2' : false) });
  const handshakes: IncomingMessage[] = [];
  wss.on('connection', (ws, req) => {
    handshakes.push(req);
    ws.on('message', (data, isBinary) => {
      if (!isBinary && String(data) === APP_CLOSE_MESSAGE) ws.close(1001, 'the app closes');
      else ws.send(data, { binary: isBinary });
    });
    ws.on('error', () => ws.terminate());
  });
  return {
    upstream,
    wss,
    handshakes,
    openSockets: () =>
      new Promise((resolve, reject) => upstream.server.getConnections((error, count) => (error ? reject(error) : resolve(count)))),
    close: async () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      await upstream.close();
    },
  };
}

/** Opens a client and waits for 'open'; rejects with the status of an unexpected response. */
export async function openWs(url: string, options: ClientOptions & { protocols?: string[] } = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, options.protocols ?? [], options);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      reject(new Error(`unexpected response ${res.statusCode ?? 0}`));
      res.resume();
      ws.terminate();
    });
  });
  return ws;
}

export interface UnexpectedResponse {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

/** Opens a client that must be refused; resolves with the relayed answer, read to its end. */
export async function refusedWs(url: string, options: ClientOptions = {}): Promise<UnexpectedResponse> {
  const ws = new WebSocket(url, options);
  const [, res] = (await Promise.race([
    once(ws, 'unexpected-response'),
    once(ws, 'open').then(() => {
      throw new Error('the upgrade was accepted');
    }),
  ])) as [unknown, IncomingMessage];
  let body = '';
  res.setEncoding('utf8');
  for await (const chunk of res) body += chunk as string;
  ws.terminate();
  return { status: res.statusCode ?? 0, headers: res.headers, body };
}
