/**
 * gRPC through the sidecar: a grpc-js client → an h2c listener → a cluster with protocol
 * http2 → a grpc-js server. Every kind of call, metadata both ways and the trailers.
 */

import * as grpc from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import { startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { echoClient, finished, startGrpcApp, unary, type EchoClient, type EchoHandlers, type EchoReply } from '../helpers/grpc';

/** Messages each way in the streaming calls. */
const MESSAGES = 10_000;

async function setup(t: Test, handlers: EchoHandlers): Promise<{ proxy: RunningSidecar; client: EchoClient }> {
  const app = await startGrpcApp(handlers);
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: grpc
    address: 127.0.0.1:0
    protocols: [http1, h2c]
    routes:
      - { name: echo, match: { prefix: /sidecar.test.Echo/ }, cluster: app, timeout: 30s }
clusters:
  - { name: app, protocol: http2, endpoints: [{ url: ${app.url} }] }
`);
  const client = echoClient(proxy.port());
  t.teardown(async () => {
    client.close();
    await proxy.close();
    await app.close();
  });
  return { proxy, client };
}

t.test('unary: the reply, metadata both ways and the trailers arrive', async (t) => {
  const { client } = await setup(t, {
    Unary: (call, callback) => {
      const headers = new grpc.Metadata();
      headers.set('x-app-header', `saw ${String(call.metadata.get('x-client-meta')[0])}`);
      call.sendMetadata(headers);
      const trailers = new grpc.Metadata();
      trailers.set('x-app-trailer', 'done');
      callback(null, { text: `echo ${call.request.text}`, index: 1 }, trailers);
    },
  });
  const metadata = new grpc.Metadata();
  metadata.set('x-client-meta', 'hello');
  const result = await unary(client, { text: 'hi', count: 0 }, metadata);
  t.equal(result.error, undefined, `no error: ${result.error?.message}`);
  t.same(result.reply, { text: 'echo hi', index: 1 });
  t.same(result.headers?.get('x-app-header'), ['saw hello'], 'request metadata reached the app; its header metadata came back');
  t.equal(result.status.code, grpc.status.OK);
  t.same(result.status.metadata.get('x-app-trailer'), ['done'], 'the trailers came back');
});

t.test(`server streaming: ${MESSAGES} messages`, async (t) => {
  const { client } = await setup(t, {
    ServerStream: (call) => {
      let i = 0;
      const writeSome = (): void => {
        while (i < call.request.count) {
          if (!call.write({ text: call.request.text, index: i++ })) {
            call.once('drain', writeSome);
            return;
          }
        }
        call.end();
      };
      writeSome();
    },
  });
  const call = client.ServerStream({ text: 'x'.repeat(100), count: MESSAGES });
  let received = 0;
  let inOrder = true;
  call.on('data', (reply: EchoReply) => {
    if (reply.index !== received) inOrder = false;
    received++;
  });
  const status = await finished(call);
  t.equal(status.code, grpc.status.OK, status.details);
  t.equal(received, MESSAGES, 'every message arrived');
  t.ok(inOrder, 'in order');
});

t.test(`client streaming: ${MESSAGES} messages`, async (t) => {
  const { client } = await setup(t, {
    ClientStream: (call, callback) => {
      let count = 0;
      let bytes = 0;
      call.on('data', (request: { text: string }) => {
        count++;
        bytes += request.text.length;
      });
      call.on('end', () => callback(null, { text: `bytes ${bytes}`, index: count }));
    },
  });
  const reply = await new Promise<EchoReply>((resolve, reject) => {
    const call = client.ClientStream(new grpc.Metadata(), {}, (error, r) => (error ? reject(error) : resolve(r as EchoReply)));
    let i = 0;
    const writeSome = (): void => {
      while (i < MESSAGES) {
        i++;
        if (!call.write({ text: 'y'.repeat(100), count: i })) {
          call.once('drain', writeSome);
          return;
        }
      }
      call.end();
    };
    writeSome();
  });
  t.same(reply, { text: `bytes ${MESSAGES * 100}`, index: MESSAGES }, 'the app received every message');
});

t.test(`bidi streaming: ${MESSAGES} messages each way`, async (t) => {
  const { client } = await setup(t, {
    Bidi: (call) => {
      call.on('data', (request: { text: string; count: number }) => call.write({ text: request.text, index: request.count }));
      call.on('end', () => call.end());
    },
  });
  const call = client.Bidi();
  let received = 0;
  let sum = 0;
  call.on('data', (reply: EchoReply) => {
    received++;
    sum += reply.index;
  });
  const status = finished(call);
  let i = 0;
  const writeSome = (): void => {
    while (i < MESSAGES) {
      i++;
      if (!call.write({ text: 'z'.repeat(50), count: i })) {
        call.once('drain', writeSome);
        return;
      }
    }
    call.end();
  };
  writeSome();
  const final = await status;
  t.equal(final.code, grpc.status.OK, final.details);
  t.equal(received, MESSAGES, 'every message came back');
  t.equal(sum, (MESSAGES * (MESSAGES + 1)) / 2, 'each one once');
});
