import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ROOT_CONTEXT, SamplingDecision } from '@opentelemetry/api';
import { TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace';
import { request } from 'undici';
import { parseConfigText } from '../../src/config/load';
import { upstreamRequestHeaders } from '../../src/proxy/headers';
import { startTracing } from '../../src/telemetry/otel';
import { splitHostHeader } from '../../src/telemetry/request-trace';
import type { RequestTrace, Tracing } from '../../src/telemetry/tracing';
import { SPAN_KIND, startOtlpReceiver } from '../helpers/otlp-receiver';

const NO_MUTATION = { add: [], remove: [] };

function tracingFor(receiverUrl: string, extra = ''): Tracing {
  const loaded = parseConfigText(
    `
listeners:
  - name: main
    address: 127.0.0.1:0
    routes: [{ name: ping, match: { path: /ping }, directResponse: { status: 200 } }]
tracing: { endpoint: "${receiverUrl}", propagators: [tracecontext, baggage, b3] ${extra} }
`,
    '/tmp/trace.yaml',
  );
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  return startTracing(loaded.config, { env: {} });
}

/** Runs `handle` inside a real request to a real server, with the request's trace. */
async function withRequest(tracing: Tracing, headers: Record<string, string>, handle: (trace: RequestTrace, req: http.IncomingMessage) => void): Promise<void> {
  const server = http.createServer((req, res) => {
    const trace = tracing.startRequest(req, res, 'main', 'http', 'req-1');
    handle(trace, req);
    res.end('done');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    await (await request(`http://127.0.0.1:${port}/x`, { headers })).body.text();
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

t.test('each attempt gets its own CLIENT span and rewrites the trace headers in place; the attempt slot stays last', async (t) => {
  const receiver = await startOtlpReceiver();
  const tracing = tracingFor(receiver.url);
  t.teardown(async () => {
    await tracing.shutdown(2_000);
    await receiver.close();
  });
  let list: string[] = [];
  await withRequest(tracing, { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'x-b3-traceid': 'aa' }, (trace, req) => {
    list = upstreamRequestHeaders(req.rawHeaders, { peerAddress: '127.0.0.1', peerTrusted: false, proto: 'http', requestId: 'req-1', clientCert: undefined, traceHeaders: tracing.ownedRequestHeaders, authority: undefined }, NO_MUTATION);
    t.notOk(list.includes('traceparent'), 'the client\'s traceparent is dropped from the list');
    t.notOk(list.includes('x-b3-traceid'), 'and its B3 headers');
    trace.attemptStarted(1, 'http://127.0.0.1:3000', '/x?q=1', list);
    trace.attemptResponded(503);
    trace.attemptEnded();
    trace.attemptStarted(2, 'http://127.0.0.1:3001', '/x?q=1', list, { reason: '5xx', backoffMs: 25 });
    trace.event('sidecar.endpoint.ejected', { 'sidecar.endpoint': 'http://127.0.0.1:3000' });
    trace.attemptResponded(200);
    trace.attemptEnded();
    trace.end({ status: 200, route: 'api', cluster: 'app', errorCode: undefined, flags: undefined });
  });
  await tracing.forceFlush();
  const spans = await receiver.waitFor((s) => s.length >= 3);
  const server = spans.find((s) => s.kind === SPAN_KIND.SERVER);
  const attempts = spans.filter((s) => s.kind === SPAN_KIND.CLIENT).sort((a, b) => Number(a.attributes['sidecar.attempt']) - Number(b.attributes['sidecar.attempt']));
  t.equal(attempts.length, 2, 'two attempt spans');
  t.ok(attempts.every((a) => a.parentSpanId === server?.spanId), 'both children of the SERVER span');
  t.match(attempts[0].attributes, { 'sidecar.attempt': 1, 'http.response.status_code': 503, 'sidecar.attempt.outcome': 'response', 'error.type': '503' });
  t.match(attempts[1].attributes, { 'sidecar.attempt': 2, 'http.request.resend_count': 1, 'sidecar.retry.reason': '5xx', 'sidecar.retry.backoff_ms': 25, 'server.port': 3001 });
  t.same(attempts[1].events.map((e) => e.name), ['sidecar.endpoint.ejected']);
  t.equal(attempts[0].name, 'GET 127.0.0.1:3000');
  t.equal(server?.attributes['sidecar.attempts'], 2);

  t.equal(list.filter((entry) => entry === 'traceparent').length, 1, 'one traceparent after two attempts');
  t.match(list[list.indexOf('traceparent') + 1], new RegExp(`-${attempts[1].spanId}-01$`), 'it names the second attempt as parent');
  t.same(list.slice(-2), ['x-sidecar-attempt', '1'], 'the attempt slot is still last (setAttempt writes it)');
  t.equal(list[list.indexOf('x-b3-spanid') + 1], attempts[1].spanId);
});

t.test('without an explicit reason the next attempt names what ended the previous one, and the wait before it', async (t) => {
  const receiver = await startOtlpReceiver();
  const tracing = tracingFor(receiver.url);
  t.teardown(async () => {
    await tracing.shutdown(2_000);
    await receiver.close();
  });
  await withRequest(tracing, {}, (trace) => {
    const list = ['x-sidecar-attempt', '1'];
    trace.attemptStarted(1, 'http://127.0.0.1:3000', '/', list);
    trace.attemptEnded({ kind: 'connect-failure', code: 'UPSTREAM_CONNECT_FAILURE', cause: new Error('ECONNREFUSED') });
    trace.attemptStarted(2, 'http://127.0.0.1:3000', '/', list);
    trace.attemptResponded(200);
    trace.attemptEnded();
    trace.end({ status: 200, route: 'api', cluster: 'app', errorCode: undefined, flags: undefined });
  });
  await tracing.forceFlush();
  const spans = await receiver.waitFor((s) => s.length >= 3);
  const second = spans.find((s) => s.attributes['sidecar.attempt'] === 2);
  t.equal(second?.attributes['sidecar.retry.reason'], 'connect-failure');
  t.type(second?.attributes['sidecar.retry.backoff_ms'], 'number');
});

t.test('a new trace the sampler declines records nothing; each attempt still carries its ids, flag off, in every listed format', async (t) => {
  const receiver = await startOtlpReceiver();
  const tracing = tracingFor(receiver.url, ', sampleRatio: 0');
  t.teardown(async () => {
    await tracing.shutdown(2_000);
    await receiver.close();
  });
  const list = ['x-sidecar-attempt', '1'];
  const lists: string[][] = [];
  let ids: { traceId?: string; spanId?: string } = {};
  await withRequest(tracing, {}, (trace) => {
    ids = { traceId: trace.traceId, spanId: trace.spanId };
    for (const attempt of [1, 2]) {
      trace.attemptStarted(attempt, 'http://127.0.0.1:3000', '/', list);
      lists.push([...list]);
      trace.attemptEnded();
    }
    trace.end({ status: 200, route: 'api', cluster: 'app', errorCode: undefined, flags: undefined });
  });
  await tracing.forceFlush();
  t.equal(receiver.requests, 0, 'nothing was exported');
  t.equal(tracing.describe().spans.exported, 0);
  t.match(ids.traceId, /^[0-9a-f]{32}$/);
  t.match(ids.spanId, /^[0-9a-f]{16}$/);
  const value = (list: string[], name: string): string | undefined => (list.includes(name) ? list[list.indexOf(name) + 1] : undefined);
  const parents = lists.map((list) => {
    const [, traceId, parent] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-00$/.exec(value(list, 'traceparent') ?? '') ?? [];
    t.equal(traceId, ids.traceId, 'the request\'s trace, not sampled');
    t.equal(value(list, 'x-b3-traceid'), ids.traceId, 'B3 names the same trace');
    t.equal(value(list, 'x-b3-spanid'), parent, 'and the same parent');
    t.equal(value(list, 'x-b3-sampled'), '0', 'not sampled');
    t.notOk(list.includes('tracestate') || list.includes('baggage'), 'no tracestate or baggage was given, none is made up');
    t.same(list.slice(-2), ['x-sidecar-attempt', '1'], 'the attempt slot stays last');
    return parent;
  });
  t.equal(lists[1].length, lists[0].length, 'the second attempt replaced the first one\'s headers');
  t.not(parents[0], parents[1], 'each attempt has a span id of its own');
  t.notOk(parents.includes(ids.spanId ?? ''), 'neither is the SERVER span\'s');
});

t.test('ratio sampling of new traces: exactly the trace ids the ratio admits are exported, each under the id the request got', async (t) => {
  const receiver = await startOtlpReceiver();
  const ratio = 0.25;
  const tracing = tracingFor(receiver.url, `, sampleRatio: ${ratio}`);
  t.teardown(async () => {
    await tracing.shutdown(2_000);
    await receiver.close();
  });
  // The SDK's own ratio sampler decides from the trace id alone: it names the traces that must
  // be exported. Asking it twice for two different ids (once before the span, once in the SDK)
  // would export fewer traces than it admits (about ratio² of them), under other ids.
  const judge = new TraceIdRatioBasedSampler(ratio);
  const admitted = (traceId: string): boolean => judge.shouldSample(ROOT_CONTEXT, traceId).decision === SamplingDecision.RECORD_AND_SAMPLED;
  const requests = 2_000;
  const flagsByTrace = new Map<string, string>();
  let otherIdToTheApp = 0;
  // The traces are started on one real request (the first by withRequest), as many requests would.
  await withRequest(tracing, {}, (first, req) => {
    const res = new http.ServerResponse(req);
    for (let i = 0; i < requests; i++) {
      const trace = i === 0 ? first : tracing.startRequest(req, res, 'main', 'http', `req-${i}`);
      const list = ['x-sidecar-attempt', '1'];
      trace.attemptStarted(1, 'http://127.0.0.1:3000', '/', list);
      trace.attemptEnded();
      trace.end({ status: 200, route: 'api', cluster: 'app', errorCode: undefined, flags: undefined });
      const [, traceId, flags] = /^00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$/.exec(list[list.indexOf('traceparent') + 1]) ?? [];
      if (traceId !== trace.traceId) otherIdToTheApp++;
      flagsByTrace.set(traceId, flags);
    }
  });
  const expected = [...flagsByTrace.keys()].filter(admitted);
  const sampledOnTheWire = [...flagsByTrace].filter(([, flags]) => flags === '01').map(([traceId]) => traceId);
  await tracing.forceFlush();
  const spans = await receiver.waitFor((spans) => spans.filter((s) => s.kind === SPAN_KIND.SERVER).length >= expected.length);
  const exported = spans.filter((s) => s.kind === SPAN_KIND.SERVER).map((s) => s.traceId);
  t.equal(otherIdToTheApp, 0, 'the app always gets the request\'s trace id');
  t.equal(flagsByTrace.size, requests, 'every request started a trace of its own');
  t.same(exported.sort(), [...expected].sort(), 'the SERVER spans exported are those of the admitted trace ids');
  t.same(sampledOnTheWire.sort(), [...expected].sort(), 'and only those went to the app flagged sampled');
  // Binomial(2000, 0.25): mean 500, standard deviation 19.4. ±100 is more than five of them;
  // ratio² would give about 125.
  t.ok(Math.abs(expected.length - requests * ratio) < 100, `${expected.length} of ${requests} sampled at ratio ${ratio}`);
});

t.test('an unsampled parent: each attempt carries the trace id, a fresh parent id, the flag off and the caller\'s tracestate', async (t) => {
  const receiver = await startOtlpReceiver();
  const tracing = tracingFor(receiver.url, ', sampleRatio: 1');
  t.teardown(async () => {
    await tracing.shutdown(2_000);
    await receiver.close();
  });
  const traceId = '0af7651916cd43dd8448eb211c80319c';
  // One header list for the request, rewritten per attempt (as the exchange does); a copy per attempt.
  const list = ['x-sidecar-attempt', '1'];
  const lists: string[][] = [];
  let serverSpanId: string | undefined;
  await withRequest(tracing, { traceparent: `00-${traceId}-b7ad6b7169203331-00`, tracestate: 'vendor=42' }, (trace) => {
    serverSpanId = trace.spanId;
    for (const attempt of [1, 2]) {
      trace.attemptStarted(attempt, 'http://127.0.0.1:3000', '/', list);
      lists.push([...list]);
      trace.attemptEnded();
    }
    trace.end({ status: 200, route: 'api', cluster: 'app', errorCode: undefined, flags: undefined });
    t.equal(trace.traceId, traceId, 'the caller\'s trace');
  });
  await tracing.forceFlush();
  t.equal(receiver.requests, 0, 'the caller did not sample it: nothing is exported, even at sampleRatio 1');
  t.equal(lists[1].length, lists[0].length, 'the second attempt replaced the first one\'s headers');
  const parents = lists.map((list) => {
    const [, id, parent, flags] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(list[list.indexOf('traceparent') + 1]) ?? [];
    t.equal(id, traceId);
    t.equal(flags, '00', 'not sampled');
    t.equal(list[list.indexOf('tracestate') + 1], 'vendor=42', 'tracestate passed on');
    t.equal(list.at(-2), 'x-sidecar-attempt', 'the attempt slot stays last');
    return parent;
  });
  t.not(parents[0], parents[1], 'each attempt has a span id of its own');
  t.notOk(parents.includes(serverSpanId ?? ''), 'neither is the SERVER span\'s');
  t.notOk(parents.includes('b7ad6b7169203331'), 'nor the caller\'s');
});

t.test('a gRPC call: the SERVER span is named package.Service/Method and carries the RPC attributes and the gRPC status', async (t) => {
  const receiver = await startOtlpReceiver();
  const tracing = tracingFor(receiver.url);
  t.teardown(async () => {
    await tracing.shutdown(2_000);
    await receiver.close();
  });
  await withRequest(tracing, {}, (trace) => {
    trace.end({ status: 200, route: 'echo', cluster: 'app', errorCode: undefined, flags: undefined, grpc: { status: 14, method: 'sidecar.test.Echo/Unary' } });
  });
  await tracing.forceFlush();
  const spans = await receiver.waitFor((s) => s.some((span) => span.kind === SPAN_KIND.SERVER));
  const server = spans.find((s) => s.kind === SPAN_KIND.SERVER);
  t.equal(server?.name, 'sidecar.test.Echo/Unary');
  t.match(server?.attributes, { 'rpc.system': 'grpc', 'rpc.service': 'sidecar.test.Echo', 'rpc.method': 'Unary', 'rpc.grpc.status_code': 14, 'http.route': 'echo' });
});

t.test('splitHostHeader handles names, ports and IPv6 literals', async (t) => {
  t.same(splitHostHeader('api.example.com:8443'), ['api.example.com', 8443]);
  t.same(splitHostHeader('api.example.com'), ['api.example.com', undefined]);
  t.same(splitHostHeader('[::1]:8080'), ['::1', 8080]);
  t.same(splitHostHeader('[::1]'), ['::1', undefined]);
  t.same(splitHostHeader(undefined), [undefined, undefined]);
});
