import * as net from 'node:net';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** The test service of test/fixtures/grpc/echo.proto. */
export const ECHO_PROTO = path.join(__dirname, '..', 'fixtures', 'grpc', 'echo.proto');

export interface EchoRequest {
  text: string;
  count: number;
}

export interface EchoReply {
  text: string;
  index: number;
}

type Unary = grpc.handleUnaryCall<EchoRequest, EchoReply>;
type ServerStream = grpc.handleServerStreamingCall<EchoRequest, EchoReply>;
type ClientStream = grpc.handleClientStreamingCall<EchoRequest, EchoReply>;
type Bidi = grpc.handleBidiStreamingCall<EchoRequest, EchoReply>;

/** The app side: any method left out answers UNIMPLEMENTED (grpc-js's default). */
export interface EchoHandlers {
  Unary?: Unary;
  ServerStream?: ServerStream;
  ClientStream?: ClientStream;
  Bidi?: Bidi;
}

/** The generated client's methods the tests call. */
export interface EchoClient extends grpc.Client {
  Unary(request: EchoRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<EchoReply>): grpc.ClientUnaryCall;
  ServerStream(request: EchoRequest, metadata?: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<EchoReply>;
  ClientStream(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<EchoReply>): grpc.ClientWritableStream<EchoRequest>;
  Bidi(metadata?: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<EchoRequest, EchoReply>;
}

interface EchoPackage {
  sidecar: { test: { Echo: grpc.ServiceClientConstructor } };
}

function loadEcho(): EchoPackage {
  const definition = protoLoader.loadSync(ECHO_PROTO, { keepCase: true, defaults: true });
  return grpc.loadPackageDefinition(definition) as unknown as EchoPackage;
}

export interface GrpcApp {
  readonly server: grpc.Server;
  readonly port: number;
  /** `http://127.0.0.1:PORT`, for the sidecar's cluster. */
  readonly url: string;
  close(): Promise<void>;
}

/** A real grpc-js server on 127.0.0.1:0 (plaintext HTTP/2). */
export async function startGrpcApp(handlers: EchoHandlers): Promise<GrpcApp> {
  const server = new grpc.Server();
  server.addService(loadEcho().sidecar.test.Echo.service, handlers as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
}

/** A grpc-js client of the Echo service at 127.0.0.1:port, plaintext (prior-knowledge HTTP/2). */
export function echoClient(port: number, options: grpc.ClientOptions = {}): EchoClient {
  const Echo = loadEcho().sidecar.test.Echo;
  return new Echo(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options) as unknown as EchoClient;
}

/** A grpc-js client over TLS to 127.0.0.1:port, verifying the server as `localhost` against `ca`. */
export function echoClientTls(port: number, ca: Buffer): EchoClient {
  const Echo = loadEcho().sidecar.test.Echo;
  return new Echo(`localhost:${port}`, grpc.credentials.createSsl(ca), {}) as unknown as EchoClient;
}

/** One unary call; resolves with the reply or rejects with the ServiceError, and gives the call's metadata and status. */
export function unary(
  client: EchoClient,
  request: EchoRequest,
  metadata = new grpc.Metadata(),
  options: grpc.CallOptions = {},
): Promise<{ reply?: EchoReply; error?: grpc.ServiceError; headers?: grpc.Metadata; status: grpc.StatusObject }> {
  return new Promise((resolve) => {
    let reply: EchoReply | undefined;
    let error: grpc.ServiceError | undefined;
    let headers: grpc.Metadata | undefined;
    const call = client.Unary(request, metadata, options, (e, r) => {
      error = e ?? undefined;
      reply = r;
    });
    call.on('metadata', (m: grpc.Metadata) => (headers = m));
    call.on('status', (status: grpc.StatusObject) => {
      // The callback runs before 'status'.
      setImmediate(() => resolve({ reply, error, headers, status }));
    });
  });
}

export interface CountingGrpcApp extends GrpcApp {
  /** TCP connections the app accepted so far. */
  readonly connections: () => number;
}

/**
 * A grpc-js server fed by a net.Server of its own (grpc-js's connection injector), so a test
 * can count the connections the app accepts. `serverOptions` are grpc-js's (e.g.
 * `grpc.max_concurrent_streams`).
 */
export async function startCountingGrpcApp(handlers: EchoHandlers, serverOptions: grpc.ServerOptions = {}): Promise<CountingGrpcApp> {
  const server = new grpc.Server(serverOptions);
  server.addService(loadEcho().sidecar.test.Echo.service, handlers as grpc.UntypedServiceImplementation);
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const listener = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    injector.injectConnection(socket);
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const port = (listener.address() as net.AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    connections: () => connections,
    close: async () => {
      injector.destroy();
      server.forceShutdown();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}

/** Resolves once a streaming call has ended: its status and its 'end' or 'error' both came ('status' fires before buffered messages are emitted). */
export function finished(call: grpc.ClientReadableStream<unknown> | grpc.ClientDuplexStream<unknown, unknown>): Promise<grpc.StatusObject> {
  return new Promise((resolve) => {
    let status: grpc.StatusObject | undefined;
    let ended = false;
    const settle = (): void => {
      if (status !== undefined && ended) resolve(status);
    };
    call.on('status', (s: grpc.StatusObject) => {
      status = s;
      settle();
    });
    const end = (): void => {
      ended = true;
      settle();
    };
    call.on('end', end);
    call.on('error', end);
  });
}
