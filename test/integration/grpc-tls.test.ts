/** gRPC over a TLS listener (HTTP/2 by ALPN) to an h2c app: unary and bidi streaming, with the status in the trailers. */

import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { makeTestPki } from '../helpers/certs';
import { echoClientTls, finished, startGrpcApp, unary, type EchoReply } from '../helpers/grpc';
import { startSidecar } from '../helpers/sidecar';

t.test('a grpc-js client with TLS credentials, through a TLS listener', async (t) => {
  const pki = await makeTestPki(t.testdir());
  const app = await startGrpcApp({
    Unary: (call, callback) => callback(null, { text: `echo ${call.request.text}`, index: 1 }),
    Bidi: (call) => {
      call.on('data', (request: { text: string; count: number }) => call.write({ text: request.text, index: request.count }));
      call.on('end', () => call.end());
    },
  });
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: secure
    address: 127.0.0.1:0
    tls:
      cert: ${JSON.stringify(pki.serverCertPath)}
      key: ${JSON.stringify(pki.serverKeyPath)}
    routes:
      - { name: echo, match: { prefix: /sidecar.test.Echo/ }, cluster: app, timeout: 30s }
clusters:
  - { name: app, protocol: http2, endpoints: [{ url: ${app.url} }] }
`);
  const client = echoClientTls(proxy.port(), pki.ca);
  t.teardown(async () => {
    client.close();
    await proxy.close();
    await app.close();
  });
  const result = await unary(client, { text: 'tls', count: 0 });
  t.equal(result.status.code, grpc.status.OK, result.status.details);
  t.same(result.reply, { text: 'echo tls', index: 1 });

  const call = client.Bidi();
  let received = 0;
  call.on('data', (_reply: EchoReply) => received++);
  const status = finished(call);
  for (let i = 1; i <= 1000; i++) call.write({ text: 'm', count: i });
  call.end();
  t.equal((await status).code, grpc.status.OK);
  t.equal(received, 1000, 'every message came back');
});
