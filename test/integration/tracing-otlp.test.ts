import t, { type Test } from 'tap';
import type { IncomingMessage } from 'node:http';
import { request } from 'undici';
import { SPAN_KIND, STATUS_CODE, startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver';
import { simpleConfig, startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { closedPort, startUpstream, type Upstream } from '../helpers/upstream';

const INCOMING_TRACE = '0af7651916cd43dd8448eb211c80319c';
const INCOMING_SPAN = 'b7ad6b7169203331';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

/** The trace headers (name, value) of each request the app got, in order. */
interface Seen {
  readonly traceHeaders: Array<[string, string]>;
}

async function startApp(t: Test, status = 200): Promise<{ app: Upstream; seen: Seen[] }> {
  const seen: Seen[] = [];
  const app = await startUpstream((req: IncomingMessage, res) => {
    const traceHeaders: Array<[string, string]> = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i].toLowerCase();
      if (['traceparent', 'tracestate', 'baggage', 'b3'].includes(name) || name.startsWith('x-b3-')) traceHeaders.push([name, req.rawHeaders[i + 1]]);
    }
    seen.push({ traceHeaders });
    res.statusCode = status;
    res.end('ok');
  });
  t.teardown(() => app.close());
  return { app, seen };
}

async function startTraced(t: Test, upstreamUrl: string, tracing: string, routeExtra = ''): Promise<{ proxy: RunningSidecar; receiver: OtlpReceiver }> {
  const receiver = await startOtlpReceiver();
  const proxy = await startSidecar(`${simpleConfig(upstreamUrl, routeExtra)}\ntracing: { endpoint: "${receiver.url}", ${tracing} }\n`);
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

function values(seen: Seen, name: string): string[] {
  return seen.traceHeaders.filter(([n]) => n === name).map(([, v]) => v);
}

t.test('an incoming W3C trace is continued: SERVER span, one CLIENT span per attempt, one traceparent for the app', async (t) => {
  const { app, seen } = await startApp(t);
  const { proxy, receiver } = await startTraced(t, app.url, 'serviceName: orders-sidecar');
  const res = await request(`${proxy.url()}/orders/42?secret=1`, {
    headers: { traceparent: `00-${INCOMING_TRACE}-${INCOMING_SPAN}-01`, tracestate: 'vendor=abc', 'user-agent': 'tracing-test/1.0' },
  });
  t.equal(res.statusCode, 200);
  await res.body.text();
  await proxy.sidecar.tracing.forceFlush();
  const spans = await receiver.waitFor((s) => s.length >= 2);

  const server = only(t, spans.filter((s) => s.kind === SPAN_KIND.SERVER), 'SERVER span');
  const client = only(t, spans.filter((s) => s.kind === SPAN_KIND.CLIENT), 'CLIENT span');
  t.equal(server.traceId, INCOMING_TRACE, 'the incoming trace id is continued');
  t.equal(server.parentSpanId, INCOMING_SPAN, 'the SERVER span is a child of the caller\'s span');
  t.equal(client.traceId, INCOMING_TRACE);
  t.equal(client.parentSpanId, server.spanId, 'the attempt span is a child of the SERVER span');
  t.equal(server.name, 'GET all');
  t.equal(server.resource['service.name'], 'orders-sidecar');
  t.match(server.attributes, {
    'http.request.method': 'GET',
    'url.path': '/orders/42',
    'url.scheme': 'http',
    'http.route': 'all',
    'http.response.status_code': 200,
    'client.address': '127.0.0.1',
    'server.address': '127.0.0.1',
    'user_agent.original': 'tracing-test/1.0',
    'sidecar.listener': 'main',
    'sidecar.cluster': 'app',
  });
  t.notOk('url.query' in server.attributes, 'the query string (which may hold secrets) is not recorded');
  t.equal(server.status.code, STATUS_CODE.UNSET);
  t.match(client.attributes, {
    'sidecar.attempt': 1,
    'sidecar.endpoint': app.url,
    'sidecar.attempt.outcome': 'response',
    'http.response.status_code': 200,
    'server.port': app.port,
    'url.full': `${app.url}/orders/42`,
  });

  const appSaw = only(t, seen, 'request at the app');
  const traceparents = values(appSaw, 'traceparent');
  t.equal(traceparents.length, 1, 'the app receives exactly one traceparent');
  const [, traceId, parentId, flags] = TRACEPARENT.exec(traceparents[0]) ?? [];
  t.equal(traceId, INCOMING_TRACE, 'carrying the incoming trace id');
  t.equal(parentId, client.spanId, 'whose parent is the attempt\'s CLIENT span');
  t.equal(flags, '01');
  t.same(values(appSaw, 'tracestate'), ['vendor=abc'], 'tracestate is carried on');

  const line = proxy.accessLog.at(-1);
  t.equal(line?.trace_id, INCOMING_TRACE, 'the access log has the trace id');
  t.equal(line?.span_id, server.spanId, 'and the SERVER span id');
});

t.test('without an incoming context a new trace starts; duplicate traceparent headers are not passed on', async (t) => {
  const { app, seen } = await startApp(t);
  const { proxy, receiver } = await startTraced(t, app.url, '');
  const res = await request(`${proxy.url()}/`, {
    headers: [
      'traceparent', `00-${INCOMING_TRACE}-${INCOMING_SPAN}-01`,
      'traceparent', '00-11111111111111111111111111111111-2222222222222222-01',
    ],
  });
  await res.body.text();
  await proxy.sidecar.tracing.forceFlush();
  const spans = await receiver.waitFor((s) => s.length >= 2);
  const server = only(t, spans.filter((s) => s.kind === SPAN_KIND.SERVER), 'SERVER span');
  t.equal(server.parentSpanId, '', 'two traceparent headers are invalid: the SERVER span is a root');
  t.not(server.traceId, INCOMING_TRACE);
  const traceparents = values(seen[0], 'traceparent');
  t.equal(traceparents.length, 1, 'the app still receives exactly one traceparent');
  t.equal(TRACEPARENT.exec(traceparents[0])?.[1], server.traceId, 'the sidecar\'s trace');
});

t.test('parent-based sampling: an unsampled caller is followed (nothing exported), a sampled one too even at ratio 0', async (t) => {
  const { app, seen } = await startApp(t);
  const { proxy, receiver } = await startTraced(t, app.url, 'sampleRatio: 0');

  const unsampledTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
  await (await request(`${proxy.url()}/a`, { headers: { traceparent: `00-${unsampledTrace}-00f067aa0ba902b7-00` } })).body.text();
  await (await request(`${proxy.url()}/b`)).body.text();
  await (await request(`${proxy.url()}/c`, { headers: { traceparent: `00-${INCOMING_TRACE}-${INCOMING_SPAN}-01` } })).body.text();
  await proxy.sidecar.tracing.forceFlush();
  const spans = await receiver.waitFor((s) => s.length >= 2);

  t.same([...new Set(spans.map((s) => s.traceId))], [INCOMING_TRACE], 'only the sampled caller\'s trace is exported');
  const [a, b, c] = seen.map((s) => TRACEPARENT.exec(values(s, 'traceparent')[0] ?? '') ?? []);
  t.equal(a[1], unsampledTrace, 'an unsampled trace still propagates');
  t.equal(a[3], '00', 'with the sampled flag off');
  t.equal(b[3], '00', 'ratio 0: a new trace is not sampled');
  t.equal(c[3], '01', 'a sampled caller is followed');
  t.equal(proxy.accessLog[0].trace_id, unsampledTrace, 'the access log has the trace id of an unsampled request too');
});

t.test('B3 single and multi headers are accepted when propagators lists b3; the app gets W3C and X-B3-*', async (t) => {
  const { app, seen } = await startApp(t);
  const { proxy, receiver } = await startTraced(t, app.url, 'propagators: [tracecontext, baggage, b3]');
  const b3Trace = '80f198ee56343ba864fe8b2a57d3eff7';
  await (await request(`${proxy.url()}/single`, { headers: { b3: `${b3Trace}-e457b5a2e4d86bd1-1`, baggage: 'tenant=acme' } })).body.text();
  const multiTrace = '463ac35c9f6413ad48485a3953bb6124';
  await (
    await request(`${proxy.url()}/multi`, { headers: { 'x-b3-traceid': multiTrace, 'x-b3-spanid': 'a2fb4a1d1a96d312', 'x-b3-sampled': '1' } })
  ).body.text();
  await proxy.sidecar.tracing.forceFlush();
  const spans = await receiver.waitFor((s) => s.filter((span) => span.kind === SPAN_KIND.SERVER).length >= 2);

  const servers = spans.filter((s) => s.kind === SPAN_KIND.SERVER);
  t.same(servers.map((s) => s.traceId).sort(), [b3Trace, multiTrace].sort(), 'both B3 encodings are continued');
  t.equal(servers.find((s) => s.traceId === b3Trace)?.parentSpanId, 'e457b5a2e4d86bd1');

  const single = seen[0];
  t.equal(TRACEPARENT.exec(values(single, 'traceparent')[0] ?? '')?.[1], b3Trace, 'the app gets a traceparent with the B3 trace id');
  t.same(values(single, 'x-b3-traceid'), [b3Trace], 'and X-B3-TraceId');
  t.same(values(single, 'b3'), [], 'the client\'s b3 header is replaced by the sidecar\'s context');
  t.same(values(single, 'baggage'), ['tenant=acme'], 'baggage is carried on');
  const client = spans.find((s) => s.kind === SPAN_KIND.CLIENT && s.traceId === b3Trace);
  t.same(values(single, 'x-b3-spanid'), [client?.spanId], 'X-B3-SpanId is the attempt span');
});

t.test('errors: a sidecar-made error marks the SERVER span with its code, the attempt span with its failure', async (t) => {
  const port = await closedPort();
  const { proxy, receiver } = await startTraced(t, `http://127.0.0.1:${port}`, 'responseHeader: true');
  const res = await request(`${proxy.url()}/`);
  await res.body.text();
  t.equal(res.statusCode, 503);
  await proxy.sidecar.tracing.forceFlush();
  const spans = await receiver.waitFor((s) => s.length >= 2);
  const server = only(t, spans.filter((s) => s.kind === SPAN_KIND.SERVER), 'SERVER span');
  const client = only(t, spans.filter((s) => s.kind === SPAN_KIND.CLIENT), 'CLIENT span');
  t.equal(server.status.code, STATUS_CODE.ERROR);
  t.equal(server.status.message, 'UPSTREAM_CONNECT_FAILURE');
  t.match(server.attributes, { 'sidecar.error.code': 'UPSTREAM_CONNECT_FAILURE', 'error.type': 'UPSTREAM_CONNECT_FAILURE', 'sidecar.response_flags': 'UF', 'http.response.status_code': 503 });
  t.equal(client.status.code, STATUS_CODE.ERROR);
  t.match(client.attributes, { 'sidecar.attempt.outcome': 'connect-failure', 'error.type': 'UPSTREAM_CONNECT_FAILURE' });
  t.equal(res.headers['x-trace-id'], server.traceId, 'responseHeader: the error response carries the trace id');
  t.equal(proxy.accessLog.at(-1)?.flags, 'UF');
});

t.test('a request no route matches gets a SERVER span and no attempt; the trace id header is on the 404', async (t) => {
  const { app } = await startApp(t);
  const receiver = await startOtlpReceiver();
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes: [{ name: api, match: { prefix: /api }, cluster: app }]
clusters: [{ name: app, endpoints: [{ url: ${app.url} }] }]
tracing: { endpoint: "${receiver.url}", responseHeader: true }
`);
  t.teardown(async () => {
    await proxy.close();
    await receiver.close();
  });
  const res = await request(`${proxy.url()}/elsewhere`);
  await res.body.text();
  t.equal(res.statusCode, 404);
  const ok = await request(`${proxy.url()}/api/x`);
  await ok.body.text();
  t.match(ok.headers['x-trace-id'], /^[0-9a-f]{32}$/, 'a proxied response carries the trace id too');
  await proxy.sidecar.tracing.forceFlush();
  const spans = await receiver.waitFor((s) => s.length >= 3);
  const noRoute = spans.filter((s) => s.traceId === res.headers['x-trace-id']);
  const server = only(t, noRoute, 'span in the NO_ROUTE trace');
  t.equal(server.kind, SPAN_KIND.SERVER);
  t.equal(server.name, 'GET');
  t.match(server.attributes, { 'sidecar.error.code': 'NO_ROUTE', 'http.response.status_code': 404, 'sidecar.response_flags': 'NR' });
});

t.test('with tracing off the client\'s trace headers reach the app untouched', async (t) => {
  const { app, seen } = await startApp(t);
  const proxy = await startSidecar(simpleConfig(app.url));
  t.teardown(() => proxy.close());
  t.equal(proxy.sidecar.tracing.enabled, false);
  const headers = {
    traceparent: `00-${INCOMING_TRACE}-${INCOMING_SPAN}-01`,
    tracestate: 'vendor=abc',
    b3: `${INCOMING_TRACE}-${INCOMING_SPAN}-1`,
    'x-b3-traceid': INCOMING_TRACE,
  };
  await (await request(`${proxy.url()}/`, { headers })).body.text();
  t.same(Object.fromEntries(seen[0].traceHeaders), headers);
  t.equal(proxy.accessLog[0].trace_id, undefined);
});

t.test('retries through the route policy show as separate attempt spans', async (t) => {
  let calls = 0;
  const app = await startUpstream((_req, res) => {
    res.statusCode = ++calls === 1 ? 503 : 200;
    res.end();
  });
  t.teardown(() => app.close());
  const { proxy, receiver } = await startTraced(t, app.url, '', 'retry: { attempts: 2, on: [5xx], backoff: { base: 10ms, max: 10ms } }');
  await (await request(`${proxy.url()}/`)).body.text();
  await proxy.sidecar.tracing.forceFlush();
  const spans = await receiver.waitFor((s) => s.filter((span) => span.kind === SPAN_KIND.CLIENT).length >= 2, 3_000);
  const attempts = spans.filter((s) => s.kind === SPAN_KIND.CLIENT).sort((a, b) => Number(a.attributes['sidecar.attempt']) - Number(b.attributes['sidecar.attempt']));
  t.equal(attempts.length, 2);
  t.equal(attempts[0].attributes['http.response.status_code'], 503);
  t.ok(attempts[1].attributes['sidecar.retry.reason'], 'the second attempt says why it was made');
});
