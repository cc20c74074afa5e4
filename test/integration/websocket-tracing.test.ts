/**
 * A WebSocket tunnel is traced like a request: one SERVER span from the upgrade to the close
 * of both sockets, with the bytes each way, and the CLIENT span of each handshake attempt as
 * its child (the app gets that span's traceparent); the access log line carries the same ids.
 * Checked on what the OTLP exporter really sends, decoded by a receiver of its own.
 */
import t, { type Test } from 'tap';
import { once } from 'node:events';
import WebSocket from 'ws';
import type { IncomingMessage } from 'node:http';
import { SPAN_KIND, STATUS_CODE, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver';
import { startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { closedPort } from '../helpers/upstream';
import { openWs, refusedWs, startWsEchoApp, type WsEchoApp } from '../helpers/websocket';
import { waitUntil } from '../helpers/wait';

const INCOMING_TRACE = '0af7651916cd43dd8448eb211c80319c';
const INCOMING_SPAN = 'b7ad6b7169203331';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

function wsUrl(proxy: RunningSidecar, path = '/'): string {
  return proxy.url().replace('http:', 'ws:') + path;
}

async function startTraced(t: Test, endpoints: string[], routeExtra = '', clusterExtra = '', tracingExtra = ''): Promise<{ proxy: RunningSidecar; receiver: OtlpReceiver }> {
  const receiver = await startOtlpReceiver();
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: chat, match: { prefix: / }, cluster: app${routeExtra ? `, ${routeExtra}` : ''} }
clusters:
  - name: app
    endpoints: [${endpoints.map((url) => `{ url: ${url} }`).join(', ')}]
${clusterExtra ? `    ${clusterExtra}` : ''}
tracing: { endpoint: "${receiver.url}", serviceName: chat-sidecar${tracingExtra ? `, ${tracingExtra}` : ''} }
`);
  t.teardown(async () => {
    await proxy.close();
    await receiver.close();
  });
  return { proxy, receiver };
}

function only<T>(t: Test, items: readonly T[], what: string): T {
  t.equal(items.length, 1, `exactly one ${what}`);
  return items[0];
}

async function echo(ws: WebSocket, text: string): Promise<string> {
  const reply = once(ws, 'message') as Promise<[Buffer]>;
  ws.send(text);
  const [data] = await reply;
  return data.toString();
}

async function echoApp(t: Test): Promise<WsEchoApp> {
  const app = await startWsEchoApp();
  t.teardown(() => app.close());
  return app;
}

t.test('a tunnel is one SERVER span from upgrade to close, with its attempt\'s CLIENT span as child', async (t) => {
  const app = await echoApp(t);
  const { proxy, receiver } = await startTraced(t, [app.upstream.url]);
  const beforeUpgrade = performance.now();
  const ws = await openWs(wsUrl(proxy, '/room/7'), { headers: { traceparent: `00-${INCOMING_TRACE}-${INCOMING_SPAN}-01` } });
  const openedAt = performance.now();
  t.equal(await echo(ws, 'hello'), 'hello');
  t.equal(await echo(ws, 'a longer message, both ways'), 'a longer message, both ways');
  // The tunnel stays open longer than its handshake took, so that a span ended at the 101
  // would be shorter than the time the tunnel was open.
  while (performance.now() - openedAt <= openedAt - beforeUpgrade) await echo(ws, 'more');
  const beforeClose = performance.now();
  ws.close(1000, 'bye');
  await once(ws, 'close');
  await waitUntil(() => proxy.accessLog.length === 1, 'the tunnel\'s log line');
  await proxy.sidecar.tracing.forceFlush();
  const spans = await receiver.waitFor((s) => s.length >= 2);

  const server = only(t, spans.filter((s) => s.kind === SPAN_KIND.SERVER), 'SERVER span');
  const client = only(t, spans.filter((s) => s.kind === SPAN_KIND.CLIENT), 'CLIENT span');
  const line = proxy.accessLog[0];
  t.equal(server.traceId, INCOMING_TRACE, 'the client\'s trace is continued');
  t.equal(server.parentSpanId, INCOMING_SPAN);
  t.equal(server.name, 'GET chat');
  t.match(server.attributes, {
    'http.request.method': 'GET',
    'url.path': '/room/7',
    'http.route': 'chat',
    'http.response.status_code': 101,
    'sidecar.cluster': 'app',
    'sidecar.upgrade': 'websocket',
    'sidecar.attempts': 1,
  });
  t.ok(line.bytes_in > 0 && line.bytes_out > 0, 'the tunnel carried bytes both ways');
  t.equal(server.attributes['sidecar.tunnel.bytes_in'], line.bytes_in, 'the span has the bytes from the client, as the log line');
  t.equal(server.attributes['sidecar.tunnel.bytes_out'], line.bytes_out, 'and the bytes to the client');
  const openFor = beforeClose - openedAt;
  t.ok(server.endMs - server.startMs >= openFor - 0.01, `the SERVER span lasts as long as the tunnel was open (${(server.endMs - server.startMs).toFixed(1)}ms >= ${openFor.toFixed(1)}ms), not until the 101`);
  t.equal(server.status.code, STATUS_CODE.UNSET);

  t.equal(client.traceId, INCOMING_TRACE);
  t.equal(client.parentSpanId, server.spanId, 'the attempt span is a child of the tunnel\'s span');
  t.match(client.attributes, { 'sidecar.attempt': 1, 'sidecar.endpoint': app.upstream.url, 'http.response.status_code': 101, 'sidecar.attempt.outcome': 'response' });

  const handshake = only(t, app.handshakes, 'handshake at the app');
  const [, traceId, parentId] = TRACEPARENT.exec(String(handshake.headers.traceparent)) ?? [];
  t.equal(traceId, INCOMING_TRACE, 'the app gets the trace');
  t.equal(parentId, client.spanId, 'with the attempt span as parent');
  t.equal(handshake.rawHeaders.filter((name) => name.toLowerCase() === 'traceparent').length, 1, 'exactly one traceparent');
  t.equal(line.trace_id, INCOMING_TRACE, 'the log line has the trace id');
  t.equal(line.span_id, server.spanId, 'and the SERVER span id');
});

t.test('a retried handshake has one CLIENT span per attempt', async (t) => {
  const app = await echoApp(t);
  const down = `http://127.0.0.1:${await closedPort()}`;
  const { proxy, receiver } = await startTraced(t, [down, app.upstream.url], 'retry: { attempts: 1, on: [connect-failure], backoff: { base: 1ms, max: 1ms } }');
  const ws = await openWs(wsUrl(proxy));
  t.equal(await echo(ws, 'x'), 'x');
  ws.close();
  await waitUntil(() => proxy.accessLog.length === 1, 'the tunnel\'s log line');
  await proxy.sidecar.tracing.forceFlush();
  const spans = await receiver.waitFor((s) => s.length >= 3);
  const server = only(t, spans.filter((s) => s.kind === SPAN_KIND.SERVER), 'SERVER span');
  const attempts = spans.filter((s: ReceivedSpan) => s.kind === SPAN_KIND.CLIENT).sort((a, b) => Number(a.attributes['sidecar.attempt']) - Number(b.attributes['sidecar.attempt']));
  t.equal(attempts.length, 2, 'two CLIENT spans');
  t.ok(attempts.every((s) => s.parentSpanId === server.spanId), 'both children of the tunnel\'s span');
  t.match(attempts[0].attributes, { 'sidecar.endpoint': down, 'sidecar.attempt.outcome': 'connect-failure' });
  t.equal(attempts[0].status.code, STATUS_CODE.ERROR);
  t.match(attempts[1].attributes, { 'sidecar.endpoint': app.upstream.url, 'sidecar.retry.reason': 'connect-failure', 'http.response.status_code': 101 });
  t.equal(server.attributes['sidecar.attempts'], 2);
});

t.test('a refused upgrade is a SERVER span with the sidecar\'s error', async (t) => {
  const app = await echoApp(t);
  const { proxy, receiver } = await startTraced(t, [app.upstream.url], '', 'circuitBreaker: { maxConcurrentRequests: 1, maxPendingRequests: 0 }');
  const first = await openWs(wsUrl(proxy));
  const refused = await refusedWs(wsUrl(proxy));
  t.equal(refused.status, 503);
  first.terminate();
  await waitUntil(() => proxy.accessLog.length === 2, 'both log lines');
  await proxy.sidecar.tracing.forceFlush();
  const spans = await receiver.waitFor((s) => s.filter((span) => span.kind === SPAN_KIND.SERVER).length >= 2);
  const failed = only(t, spans.filter((s) => s.kind === SPAN_KIND.SERVER && s.status.code === STATUS_CODE.ERROR), 'failed SERVER span');
  t.match(failed.attributes, { 'http.response.status_code': 503, 'sidecar.error.code': 'OVERLOADED', 'sidecar.upgrade': 'websocket' });
  t.ok(failed.events.some((e) => e.name === 'sidecar.breaker.rejected'), 'with the rejection event');
  t.equal(spans.filter((s) => s.kind === SPAN_KIND.CLIENT).length, 1, 'only the tunnel that opened made an attempt');
});

t.test('with tracing.responseHeader the 101 and a refusal carry x-trace-id', async (t) => {
  const app = await echoApp(t);
  const { proxy } = await startTraced(t, [app.upstream.url], '', 'circuitBreaker: { maxConcurrentRequests: 1, maxPendingRequests: 0 }', 'responseHeader: true');
  const client = new WebSocket(wsUrl(proxy), { headers: { traceparent: `00-${INCOMING_TRACE}-${INCOMING_SPAN}-01` } });
  // 'open' follows 'upgrade' in the same tick: both are listened to before either comes.
  const opened = once(client, 'open');
  const [response] = (await once(client, 'upgrade')) as [IncomingMessage];
  t.equal(response.headers['x-trace-id'], INCOMING_TRACE, 'the 101 carries the trace id');
  await opened;
  const refused = await refusedWs(wsUrl(proxy), { headers: { traceparent: `00-${INCOMING_TRACE}-${INCOMING_SPAN}-01` } });
  t.equal(refused.status, 503);
  t.equal(refused.headers['x-trace-id'], INCOMING_TRACE, 'the sidecar\'s refusal carries it too');
  client.terminate();
  await waitUntil(() => proxy.accessLog.length === 2, 'both log lines');
});
