/**
 * gRPC calls share connections to the app: concurrent calls, each with a request body, are
 * streams of one HTTP/2 connection (up to the streams a connection carries), not one
 * connection each. Every test holds all its calls open at once on the app's side, so the
 * calls are truly concurrent when the connections are counted.
 */

import * as grpc from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import { startSidecar } from '../helpers/sidecar';
import { echoClient, finished, startCountingGrpcApp, unary, type CountingGrpcApp, type EchoClient, type EchoHandlers, type EchoReply } from '../helpers/grpc';

/** Concurrent calls in each test; below the 100 streams one upstream connection carries (HTTP2_UPSTREAM_STREAMS_PER_CONNECTION). */
const CALLS = 40;
/** No call may wait longer: a call left waiting for a connection fails the test instead of hanging it. */
const CALL_DEADLINE_MS = 10_000;

async function setup(t: Test, handlers: EchoHandlers, serverOptions: grpc.ServerOptions = {}, clusterExtra = ''): Promise<{ app: CountingGrpcApp; client: EchoClient }> {
  const app = await startCountingGrpcApp(handlers, serverOptions);
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: grpc
    address: 127.0.0.1:0
    protocols: [http1, h2c]
    routes:
      - { name: echo, match: { prefix: /sidecar.test.Echo/ }, cluster: app, timeout: 30s }
clusters:
  - { name: app, protocol: http2, endpoints: [{ url: ${app.url} }]${clusterExtra} }
`);
  const client = echoClient(proxy.port());
  t.teardown(async () => {
    client.close();
    await proxy.close();
    await app.close();
  });
  // The first call opens the connection: calls sent while it is being opened would each open one.
  const warm = await unary(client, { text: 'warm', count: 0 });
  t.equal(warm.status.code, grpc.status.OK, `the warm-up call succeeded: ${warm.status.details}`);
  t.equal(app.connections(), 1, 'the warm-up call opened one connection');
  return { app, client };
}

function deadline(): grpc.CallOptions {
  return { deadline: Date.now() + CALL_DEADLINE_MS };
}

/** Answers the held calls once `count` of them are open at once (a barrier on the app's side). */
class Barrier {
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly count: number) {}
  arrive(release: () => void): void {
    this.waiting.push(release);
    if (this.waiting.length === this.count) for (const go of this.waiting.splice(0)) go();
  }
}

t.test(`${CALLS} concurrent unary calls share the warm connection`, async (t) => {
  const barrier = new Barrier(CALLS);
  const { app, client } = await setup(t, {
    Unary: (call, callback) => {
      if (call.request.text === 'warm') return callback(null, { text: 'warm', index: 0 });
      barrier.arrive(() => callback(null, { text: `echo ${call.request.text}`, index: 0 }));
    },
  });
  const results = await Promise.all(Array.from({ length: CALLS }, (_, i) => unary(client, { text: `c${i}`, count: 0 }, new grpc.Metadata(), deadline())));
  t.same(
    results.map((r) => r.status.code),
    results.map(() => grpc.status.OK),
    `every call succeeded: ${results.find((r) => r.status.code !== grpc.status.OK)?.status.details ?? ''}`,
  );
  t.same(
    results.map((r) => r.reply?.text),
    results.map((_, i) => `echo c${i}`),
  );
  t.equal(app.connections(), 1, `the app accepted one connection (${app.connections()})`);
});

t.test(`${CALLS} concurrent client-streaming calls share the warm connection`, async (t) => {
  const barrier = new Barrier(CALLS);
  const { app, client } = await setup(t, {
    Unary: (_call, callback) => callback(null, { text: 'warm', index: 0 }),
    ClientStream: (call, callback) => {
      const texts: string[] = [];
      let released = false;
      let ended = false;
      const answer = (): void => {
        if (released && ended) callback(null, { text: texts.join(''), index: texts.length });
      };
      call.on('data', (request: { text: string }) => {
        // The first message of each call reaches the barrier: the calls' streams are all open.
        if (texts.length === 0) barrier.arrive(() => ((released = true), answer()));
        texts.push(request.text);
      });
      call.on('end', () => ((ended = true), answer()));
    },
  });
  const replies = await Promise.all(
    Array.from(
      { length: CALLS },
      (_, i) =>
        new Promise<EchoReply | grpc.ServiceError>((resolve) => {
          const call = client.ClientStream(new grpc.Metadata(), deadline(), (error, reply) => resolve(error ?? (reply as EchoReply)));
          call.write({ text: `${i}a`, count: 0 });
          call.write({ text: `${i}b`, count: 0 });
          call.end();
        }),
    ),
  );
  t.same(
    replies.map((r) => ('text' in r ? r.text : r.message)),
    replies.map((_, i) => `${i}a${i}b`),
    'every call got its own messages back',
  );
  t.equal(app.connections(), 1, `the app accepted one connection (${app.connections()})`);
});

t.test(`${CALLS} concurrent bidi calls, open at once, share the warm connection`, async (t) => {
  const barrier = new Barrier(CALLS);
  const { app, client } = await setup(t, {
    Unary: (_call, callback) => callback(null, { text: 'warm', index: 0 }),
    Bidi: (call) => {
      let index = 0;
      call.on('data', (request: { text: string }) => {
        if (index === 0) barrier.arrive(() => call.write({ text: `first ${request.text}`, index: index++ }));
        else call.write({ text: request.text, index: index++ });
      });
      call.on('end', () => call.end());
    },
  });
  const outcomes = await Promise.all(
    Array.from({ length: CALLS }, async (_, i) => {
      const call = client.Bidi(new grpc.Metadata(), deadline());
      const replies: string[] = [];
      call.on('data', (reply: EchoReply) => {
        replies.push(reply.text);
        // Each reply is answered: the call is a conversation, and it stays open until its third reply.
        if (replies.length < 3) call.write({ text: `${i}.${replies.length}`, count: 0 });
        else call.end();
      });
      call.write({ text: `${i}.0`, count: 0 });
      const status = await finished(call);
      return { status, replies };
    }),
  );
  t.same(
    outcomes.map((o) => o.status.code),
    outcomes.map(() => grpc.status.OK),
    `every call succeeded: ${outcomes.find((o) => o.status.code !== grpc.status.OK)?.status.details ?? ''}`,
  );
  t.same(
    outcomes.map((o) => o.replies),
    outcomes.map((_, i) => [`first ${i}.0`, `${i}.1`, `${i}.2`]),
  );
  t.equal(app.connections(), 1, `the app accepted one connection (${app.connections()})`);
});

t.test('calls cancelled by their client mid-stream leave the other calls on the connection alone', async (t) => {
  const barrier = new Barrier(CALLS);
  const { app, client } = await setup(t, {
    Unary: (_call, callback) => callback(null, { text: 'warm', index: 0 }),
    Bidi: (call) => {
      let index = 0;
      call.on('data', (request: { text: string }) => {
        if (index === 0) barrier.arrive(() => call.write({ text: `first ${request.text}`, index: index++ }));
        else call.write({ text: request.text, index: index++ });
      });
      call.on('end', () => call.end());
    },
  });
  const outcomes = await Promise.all(
    Array.from({ length: CALLS }, async (_, i) => {
      const call = client.Bidi(new grpc.Metadata(), deadline());
      const replies: string[] = [];
      call.on('data', (reply: EchoReply) => {
        replies.push(reply.text);
        // The odd calls are cancelled after their first reply, with their request stream open.
        if (i % 2 === 1) call.cancel();
        else if (replies.length < 3) call.write({ text: `${i}.${replies.length}`, count: 0 });
        else call.end();
      });
      call.write({ text: `${i}.0`, count: 0 });
      const status = await finished(call);
      return { status, replies };
    }),
  );
  t.same(
    outcomes.map((o) => o.status.code),
    outcomes.map((_, i) => (i % 2 === 1 ? grpc.status.CANCELLED : grpc.status.OK)),
    'the cancelled calls are CANCELLED, the others OK',
  );
  t.same(
    outcomes.filter((_, i) => i % 2 === 0).map((o) => o.replies),
    outcomes.filter((_, i) => i % 2 === 0).map((_, j) => [`first ${2 * j}.0`, `${2 * j}.1`, `${2 * j}.2`]),
    'the calls not cancelled had their whole conversation',
  );
  t.equal(app.connections(), 1, `the app accepted one connection (${app.connections()})`);
});

// With more connections allowed, the pool opens another one once a connection is at the app's
// limit (test/integration/h2-upstream-pool.test.ts); with one, the calls beyond it wait.
t.test("the app's SETTINGS_MAX_CONCURRENT_STREAMS is never exceeded: with maxConnections 1, calls beyond it wait on the connection", async (t) => {
  const appLimit = 5;
  let open = 0;
  let mostOpen = 0;
  const { app, client } = await setup(
    t,
    {
      Unary: (call, callback) => {
        if (call.request.text === 'warm') return callback(null, { text: 'warm', index: 0 });
        open++;
        mostOpen = Math.max(mostOpen, open);
        // The app takes a while over each call (its work), so calls pile up behind its limit.
        setTimeout(() => {
          open--;
          callback(null, { text: `echo ${call.request.text}`, index: 0 });
        }, 20);
      },
    },
    { 'grpc.max_concurrent_streams': appLimit },
    ', maxConnections: 1',
  );
  const results = await Promise.all(Array.from({ length: CALLS }, (_, i) => unary(client, { text: `c${i}`, count: 0 }, new grpc.Metadata(), deadline())));
  t.equal(results.filter((r) => r.status.code === grpc.status.OK).length, CALLS, `every call succeeded, none refused: ${results.find((r) => r.status.code !== grpc.status.OK)?.status.details ?? ''}`);
  t.equal(mostOpen, appLimit, `the app had at most its ${appLimit} calls open at once, and reached it (${mostOpen})`);
  t.equal(app.connections(), 1, `the calls waited on the one connection (${app.connections()})`);
});

t.test('an app that answers a client stream before its end: that call gets the answer, the calls beside it go on', async (t) => {
  const { app, client } = await setup(t, {
    Unary: (_call, callback) => callback(null, { text: 'warm', index: 0 }),
    ClientStream: (call, callback) => {
      const texts: string[] = [];
      let answered = false;
      call.on('data', (request: { text: string }) => {
        texts.push(request.text);
        // 'early' calls are answered at their first message, their request stream still open.
        if (request.text.startsWith('early') && !answered) {
          answered = true;
          callback(null, { text: `early answer to ${request.text}`, index: 0 });
        }
      });
      call.on('end', () => {
        if (!answered) callback(null, { text: texts.join(''), index: texts.length });
      });
    },
  });
  const replies = await Promise.all(
    Array.from(
      { length: CALLS },
      (_, i) =>
        new Promise<string>((resolve) => {
          const call = client.ClientStream(new grpc.Metadata(), deadline(), (error, reply) => resolve(error?.message ?? (reply as EchoReply).text));
          if (i % 2 === 0) {
            // Keeps streaming until its answer came.
            call.write({ text: `early${i}`, count: 0 });
            const more = setInterval(() => call.write({ text: 'more', count: 0 }), 5);
            call.on('status', () => {
              clearInterval(more);
              call.end();
            });
          } else {
            call.write({ text: `${i}a`, count: 0 });
            call.write({ text: `${i}b`, count: 0 });
            call.end();
          }
        }),
    ),
  );
  t.same(
    replies,
    replies.map((_, i) => (i % 2 === 0 ? `early answer to early${i}` : `${i}a${i}b`)),
    'each call got its own answer',
  );
  t.equal(app.connections(), 1, `the app accepted one connection (${app.connections()})`);
});
