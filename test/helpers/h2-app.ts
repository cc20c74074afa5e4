import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { Test } from 'tap';
import { startSidecar, type RunningSidecar } from './sidecar';

export interface ListeningH2App {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Listens with a node:http2 (h2c) app server on 127.0.0.1:0. `close` destroys the sessions
 * still open first: the sidecar keeps its connections to the app, and server.close() would
 * wait for them.
 */
export async function listenH2App(server: http2.Http2Server): Promise<ListeningH2App> {
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const session of sessions) session.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A sidecar with one h2c-capable listener routing everything to `app` through a cluster with
 * `protocol: http2`; it and the app are closed at the test's end.
 */
export async function startSidecarToH2App(t: Test, app: ListeningH2App, clusterExtra = '', routeExtra = ''): Promise<RunningSidecar> {
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    protocols: [http1, h2c]
    routes:
      - { name: all, match: { prefix: / }, cluster: app, timeout: 10s${routeExtra} }
clusters:
  - { name: app, protocol: http2, endpoints: [{ url: ${app.url} }]${clusterExtra} }
`);
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  return proxy;
}
