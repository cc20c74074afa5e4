/**
 * gRPC semantics of the sidecar: its own errors as gRPC statuses, retries on a gRPC status of
 * a trailers-only answer, grpc-timeout capping the route deadline (and the app receiving the
 * time left), and the status in the access log, the metric and the span.
 */

import * as grpc from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import { startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { echoClient, finished, startGrpcApp, unary, type EchoClient, type EchoHandlers } from '../helpers/grpc';
import { parsePrometheusText } from '../helpers/prometheus';
import { closedPort } from '../helpers/upstream';
import { waitUntil } from '../helpers/wait';

async function setup(t: Test, handlers: EchoHandlers, route = '', cluster = ''): Promise<{ proxy: RunningSidecar; client: EchoClient }> {
  const app = await startGrpcApp(handlers);
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: grpc
    address: 127.0.0.1:0
    protocols: [http1, h2c]
    routes:
      - { name: echo, match: { prefix: /sidecar.test.Echo/ }, cluster: app, timeout: 10s${route} }
clusters:
  - { name: app, protocol: http2, endpoints: [{ url: ${app.url} }]${cluster} }
`);
  const client = echoClient(proxy.port());
  t.teardown(async () => {
    client.close();
    await proxy.close();
    await app.close();
  });
  return { proxy, client };
}

function metadataValue(metadata: grpc.Metadata | undefined, key: string): string | undefined {
  const value = metadata?.get(key)[0];
  return value === undefined ? undefined : String(value);
}

t.test('no route: UNIMPLEMENTED from the sidecar, with its message and x-sidecar-error', async (t) => {
  const app = await startGrpcApp({});
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: grpc
    address: 127.0.0.1:0
    protocols: [http1, h2c]
    routes:
      - { name: other, match: { prefix: /other.Service/ }, cluster: app }
clusters:
  - { name: app, protocol: http2, endpoints: [{ url: ${app.url} }] }
`);
  const client = echoClient(proxy.port());
  t.teardown(async () => {
    client.close();
    await proxy.close();
    await app.close();
  });
  const result = await unary(client, { text: 'x', count: 0 });
  t.equal(result.status.code, grpc.status.UNIMPLEMENTED);
  t.match(result.status.details, /no route of listener grpc matches POST \/sidecar\.test\.Echo\/Unary/);
  t.equal(metadataValue(result.headers, 'x-sidecar-error'), 'NO_ROUTE');
  await waitUntil(() => proxy.accessLog.length === 1, 'the access log line');
  t.equal(proxy.accessLog[0].status, 200, 'HTTP 200, as gRPC errors are');
  t.equal(proxy.accessLog[0].grpc_status, grpc.status.UNIMPLEMENTED, 'grpc_status in the access log');
});

t.test('connect failure: UNAVAILABLE with the sidecar\'s message; then an open circuit: UNAVAILABLE CIRCUIT_OPEN', async (t) => {
  const port = await closedPort();
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: grpc
    address: 127.0.0.1:0
    protocols: [h2c]
    routes:
      - { name: echo, match: { prefix: / }, cluster: app }
clusters:
  - name: app
    protocol: http2
    endpoints: [{ url: http://127.0.0.1:${port} }]
    circuitBreaker: { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeout: 60s }
`);
  const client = echoClient(proxy.port());
  t.teardown(async () => {
    client.close();
    await proxy.close();
  });
  const first = await unary(client, { text: 'x', count: 0 });
  t.equal(first.status.code, grpc.status.UNAVAILABLE);
  t.equal(metadataValue(first.headers, 'x-sidecar-error'), 'UPSTREAM_CONNECT_FAILURE');
  t.match(first.status.details, /refused/);
  let last = first;
  for (let i = 0; i < 10 && metadataValue(last.headers, 'x-sidecar-error') !== 'CIRCUIT_OPEN'; i++) last = await unary(client, { text: 'x', count: 0 });
  t.equal(metadataValue(last.headers, 'x-sidecar-error'), 'CIRCUIT_OPEN', 'the circuit opened');
  t.equal(last.status.code, grpc.status.UNAVAILABLE);
  t.match(last.status.details, /circuit breaker of cluster app is open/, 'the sidecar\'s message');
});

t.test('UNAVAILABLE from the app is retried (retry.on: [unavailable]) and the client sees OK', async (t) => {
  let calls = 0;
  const attempts: string[] = [];
  const { proxy, client } = await setup(
    t,
    {
      Unary: (call, callback) => {
        calls++;
        attempts.push(String(call.metadata.get('x-sidecar-attempt')[0]));
        if (calls === 1) callback({ code: grpc.status.UNAVAILABLE, details: 'warming up' });
        else callback(null, { text: `ok after ${calls}`, index: calls });
      },
    },
    ', retry: { attempts: 2, on: [unavailable], backoff: { base: 1ms, max: 5ms } }',
  );
  const result = await unary(client, { text: 'x', count: 0 });
  t.equal(result.status.code, grpc.status.OK, result.status.details);
  t.same(result.reply, { text: 'ok after 2', index: 2 });
  t.same(attempts, ['1', '2'], 'the app saw two attempts');
  const metrics = parsePrometheusText(await (await fetch(`${proxy.adminUrl}/metrics`)).text());
  t.equal(metrics.value('sidecar_retries_total', { cluster: 'app', reason: 'unavailable' }), 1, 'counted as an unavailable retry');
  t.equal(metrics.value('sidecar_grpc_responses_total', { listener: 'grpc', route: 'echo', cluster: 'app', grpc_code: '0' }), 1, 'one OK answer');
});

t.test('a status not in retry.on, or after messages were sent, is relayed as it is', async (t) => {
  let calls = 0;
  const { proxy, client } = await setup(
    t,
    {
      Unary: (_call, callback) => {
        calls++;
        callback({ code: grpc.status.INTERNAL, details: 'broken' });
      },
      ServerStream: (call) => {
        calls++;
        call.write({ text: 'one', index: 0 });
        call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'gone mid-stream' });
      },
    },
    ', retry: { attempts: 2, on: [unavailable], backoff: { base: 1ms, max: 5ms } }',
  );
  const result = await unary(client, { text: 'x', count: 0 });
  t.equal(result.status.code, grpc.status.INTERNAL);
  t.equal(result.status.details, 'broken', 'the app\'s own message');
  t.equal(calls, 1, 'INTERNAL is not in retry.on');
  const stream = client.ServerStream({ text: 'x', count: 1 });
  let messages = 0;
  stream.on('data', () => messages++);
  stream.on('error', () => {});
  const status = await finished(stream);
  t.equal(status.code, grpc.status.UNAVAILABLE, 'a status in the trailers after a message is not retried');
  t.equal(messages, 1);
  t.equal(calls, 2, 'sent once');
  await waitUntil(() => proxy.accessLog.length === 2, 'two access log lines');
  t.same(proxy.accessLog.map((l) => l.grpc_status), [grpc.status.INTERNAL, grpc.status.UNAVAILABLE], 'grpc_status from the headers, then from the trailers');
});

t.test('grpc-timeout caps the route timeout; the app receives the time left', async (t) => {
  let appDeadlineMs: number | undefined;
  const { proxy, client } = await setup(t, {
    Unary: (call) => {
      const deadline = call.getDeadline();
      appDeadlineMs = deadline instanceof Date ? deadline.getTime() - Date.now() : Number(deadline) - Date.now();
      // Never answers: the deadline ends the call.
    },
  });
  const started = Date.now();
  const result = await unary(client, { text: 'x', count: 0 }, new grpc.Metadata(), { deadline: Date.now() + 800 });
  t.equal(result.status.code, grpc.status.DEADLINE_EXCEEDED);
  t.ok(appDeadlineMs !== undefined && appDeadlineMs > 0 && appDeadlineMs <= 800, `the app's deadline is the time left (${appDeadlineMs}ms)`);
  t.ok(Date.now() - started < 5_000, 'not the route timeout (10s)');
  await waitUntil(() => proxy.accessLog.length === 1, 'the access log line');
  // The client's clock and the sidecar's run out together: whichever acts first, the sidecar
  // answering DEADLINE_EXCEEDED or the client cancelling its stream (logged as CANCELLED).
  t.ok(
    [grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED].includes(proxy.accessLog[0].grpc_status ?? -1),
    `grpc_status is DEADLINE_EXCEEDED or CANCELLED (${proxy.accessLog[0].grpc_status})`,
  );
});

t.test('the route timeout alone: DEADLINE_EXCEEDED from the sidecar, and the app was told the route timeout', async (t) => {
  let appDeadlineMs: number | undefined;
  const app = await startGrpcApp({
    Unary: (call) => {
      const deadline = call.getDeadline();
      appDeadlineMs = deadline instanceof Date ? deadline.getTime() - Date.now() : Number(deadline) - Date.now();
    },
  });
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: grpc
    address: 127.0.0.1:0
    protocols: [h2c]
    routes:
      - { name: echo, match: { prefix: / }, cluster: app, timeout: 300ms }
clusters:
  - { name: app, protocol: http2, endpoints: [{ url: ${app.url} }] }
`);
  const short = echoClient(proxy.port());
  t.teardown(async () => {
    short.close();
    await proxy.close();
    await app.close();
  });
  const result = await unary(short, { text: 'x', count: 0 });
  t.equal(result.status.code, grpc.status.DEADLINE_EXCEEDED);
  t.equal(metadataValue(result.headers, 'x-sidecar-error'), 'UPSTREAM_TIMEOUT');
  t.ok(appDeadlineMs !== undefined && appDeadlineMs > 0 && appDeadlineMs <= 300, `the app's deadline is the route's (${appDeadlineMs}ms)`);
});
