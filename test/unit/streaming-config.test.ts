/**
 * The configuration of streaming limits (route `websocket`, cluster `maxResponseHeaderBytes`)
 * and the pure pieces of the streaming path: the body limiter and the upgrade test.
 */
import t from 'tap';
import type { IncomingMessage } from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import * as D from '../../src/config/defaults';
import { formatConfigErrors, parseConfigText } from '../../src/config/load';
import type { SidecarConfig } from '../../src/config/types';
import { SidecarError } from '../../src/core/errors';
import { limitRequestBody } from '../../src/proxy/body-limit';
import { isWebSocketUpgrade } from '../../src/listener/upgrade-handler';

function load(routeExtra: string, clusterExtra = ''): ReturnType<typeof parseConfigText> {
  return parseConfigText(
    [
      'listeners:',
      '  - name: main',
      '    address: 127.0.0.1:8080',
      '    routes:',
      '      - name: all',
      '        match: { prefix: / }',
      '        cluster: app',
      ...(routeExtra ? [`        ${routeExtra}`] : []),
      '      - name: ping',
      '        match: { path: /ping }',
      '        directResponse: { status: 200 }',
      'clusters:',
      '  - name: app',
      '    endpoints: [{ url: http://127.0.0.1:3000 }]',
      ...(clusterExtra ? [`    ${clusterExtra}`] : []),
    ].join('\n'),
    '/tmp/inline.yaml',
  );
}

function mustLoad(result: ReturnType<typeof parseConfigText>): SidecarConfig {
  if (!result.ok) throw new Error(formatConfigErrors('inline.yaml', result.errors));
  return result.config;
}

t.test('websocket.idleTimeout and maxResponseHeaderBytes: values and defaults', async (t) => {
  const defaults = mustLoad(load(''));
  const route = defaults.listeners[0].routes[0];
  if (route.action !== 'cluster') throw new Error('expected a cluster route');
  t.equal(route.websocket.idleTimeoutMs, D.DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS, 'idle timeout default');
  t.equal(D.DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS, 5 * 60_000, 'five minutes');
  t.equal(defaults.clusters.get('app')?.maxResponseHeaderBytes, D.DEFAULT_LISTENER_MAX_HEADER_BYTES, 'response header limit = request header limit');

  const set = mustLoad(load('websocket: { idleTimeout: 90s }', 'maxResponseHeaderBytes: 32KiB'));
  const setRoute = set.listeners[0].routes[0];
  if (setRoute.action !== 'cluster') throw new Error('expected a cluster route');
  t.equal(setRoute.websocket.idleTimeoutMs, 90_000);
  t.equal(set.clusters.get('app')?.maxResponseHeaderBytes, 32 * 1024);
  t.not(set.clusters.get('app')?.fingerprint, defaults.clusters.get('app')?.fingerprint, 'the limit is part of the cluster fingerprint (a reload rebuilds its pools)');
});

t.test('invalid streaming settings are reported with their path', async (t) => {
  const badIdle = load('websocket: { idleTimeout: forever }');
  t.notOk(badIdle.ok);
  if (!badIdle.ok) t.match(badIdle.errors[0], { path: 'listeners[0].routes[0].websocket.idleTimeout', line: 8 });

  const unknown = load('websocket: { idle: 1s }');
  t.notOk(unknown.ok, 'unknown keys under websocket are rejected');

  const badSize = load('', 'maxResponseHeaderBytes: lots');
  t.notOk(badSize.ok);
  if (!badSize.ok) t.match(badSize.errors[0], { path: 'clusters[0].maxResponseHeaderBytes' });

  const onDirect = parseConfigText(
    'listeners:\n  - name: main\n    address: 127.0.0.1:8080\n    routes:\n      - name: ping\n        match: { path: /ping }\n        directResponse: { status: 200 }\n        websocket: { idleTimeout: 1s }\n',
    '/tmp/inline.yaml',
  );
  t.notOk(onDirect.ok, 'websocket on a directResponse route is an error');
  if (!onDirect.ok) t.match(onDirect.errors[0].message, /websocket only applies to routes with a cluster/);
});

function fakeRequest(headers: Record<string, string>, method = 'POST'): IncomingMessage & PassThrough {
  const stream = new PassThrough() as PassThrough & { headers: Record<string, string>; method: string; complete: boolean };
  stream.headers = headers;
  stream.method = method;
  stream.complete = false;
  stream.on('end', () => (stream.complete = true));
  return stream as unknown as IncomingMessage & PassThrough;
}

async function drain(stream: Readable): Promise<{ bytes: number; error: unknown }> {
  let bytes = 0;
  try {
    for await (const chunk of stream) bytes += (chunk as Buffer).length;
    return { bytes, error: undefined };
  } catch (error) {
    return { bytes, error };
  }
}

t.test('limitRequestBody', async (t) => {
  const declared = fakeRequest({ 'content-length': '10' });
  t.equal(limitRequestBody(declared, 5), declared, 'a body with Content-Length is passed as it is (checked before)');

  const under = fakeRequest({ 'transfer-encoding': 'chunked' });
  const underLimited = limitRequestBody(under, 10);
  under.write(Buffer.alloc(6));
  under.end(Buffer.alloc(4));
  t.same(await drain(underLimited), { bytes: 10, error: undefined }, 'exactly the limit passes');

  const over = fakeRequest({ 'transfer-encoding': 'chunked' });
  const overLimited = limitRequestBody(over, 10);
  over.write(Buffer.alloc(6));
  over.write(Buffer.alloc(6));
  const result = await drain(overLimited);
  t.equal(result.bytes, 6, 'the chunk that crosses the limit is not passed on');
  t.type(result.error, SidecarError);
  t.match(result.error, { code: 'REQUEST_TOO_LARGE', status: 413 });

  const aborted = fakeRequest({ 'transfer-encoding': 'chunked' });
  const abortedLimited = limitRequestBody(aborted, 10);
  aborted.write(Buffer.alloc(3));
  aborted.destroy();
  const abortedResult = await drain(abortedLimited);
  t.match(abortedResult.error, { code: 'ECONNRESET' }, 'a client that leaves mid-body fails the upstream body');
});

t.test('isWebSocketUpgrade', async (t) => {
  const req = (method: string, upgrade?: string): IncomingMessage =>
    ({ method, headers: upgrade === undefined ? {} : { upgrade } }) as unknown as IncomingMessage;
  t.ok(isWebSocketUpgrade(req('GET', 'websocket')));
  t.ok(isWebSocketUpgrade(req('GET', 'WebSocket')), 'case-insensitive');
  t.ok(isWebSocketUpgrade(req('GET', 'foo, websocket')), 'in a list');
  t.notOk(isWebSocketUpgrade(req('GET', 'h2c')));
  t.notOk(isWebSocketUpgrade(req('POST', 'websocket')), 'only GET');
  t.notOk(isWebSocketUpgrade(req('GET')));
});
