import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ClusterStats } from '../../src/telemetry/metrics/stats';
import { collectStatus, mergeClusterDetails, StatusError, type StatusReport } from '../../src/status/collect';
import { fit, formatMs, formatPercent, formatUptime, renderStatus, wrap } from '../../src/status/render';

const LONG = 'a-cluster-name-that-someone-thought-was-a-good-idea-to-make-very-long';

const cluster: ClusterStats = {
  name: LONG,
  breaker: 'open',
  inFlight: 1234,
  attemptsPerSecond: 12345.678,
  errorRate: 0.5,
  endpoints: [
    {
      url: `http://${'x'.repeat(90)}.example.com:8080`,
      priority: 2,
      healthy: false,
      inFlight: 3,
      requests: 1_000_000,
      failures: 999_999,
      connections: { busy: 128, idle: 0 },
      pending: 4096,
    },
  ],
};

function report(): StatusReport {
  return {
    admin: 'http://127.0.0.1:9901',
    live: true,
    ready: false,
    clusterDetails: false,
    clusters: mergeClusterDetails([cluster], undefined),
    stats: {
      ready: false,
      pid: 4242,
      startedAt: '2026-05-01T10:00:00.000Z',
      uptimeSeconds: 93_784,
      config: {
        source: `/etc/${'deep/'.repeat(30)}sidecar.yaml`,
        sha256: 'f'.repeat(64),
        loadedAt: '2026-05-01T10:00:00.000Z',
        lastReload: { ok: false, at: '2026-05-02T12:03:04.000Z', error: `listeners[0].routes[3].timeout: ${'very long reason '.repeat(10)}\nsecond line\nthird\nfourth` },
        reloads: { success: 3, failure: 1 },
      },
      listeners: [{ name: `listener-${'n'.repeat(80)}`, address: '[2001:db8::1]:8443', proto: 'https', mtls: true, routes: 300, connections: 10_000 }],
      trafficWindowSeconds: 60,
      routes: [{ listener: 'ingress', route: `route-${'r'.repeat(80)}`, cluster: LONG, requests: 1e6, requestsPerSecond: 16666.67, errorRate: 1, p50Ms: 900.5, p99Ms: 12_345.6 }],
      tracing: {
        exporter: 'otlp-grpc',
        endpoint: `http://${'c'.repeat(80)}:4317`,
        serviceName: 'orders',
        sampler: 'parentbased_traceidratio 0.01',
        propagators: ['tracecontext'],
        responseHeader: false,
        spans: { exported: 1, droppedQueueFull: 2, droppedExportFailed: 3 },
        sources: {},
      },
      recentErrors: [
        {
          time: '2026-05-02T12:03:04.000Z',
          code: 'UPSTREAM_PROTOCOL_ERROR',
          status: 502,
          method: 'PROPFIND',
          path: `/${'p'.repeat(200)}`,
          listener: 'ingress',
          route: `route-${'r'.repeat(80)}`,
          cluster: LONG,
          requestId: 'x'.repeat(128),
          traceId: '0af7651916cd43dd8448eb211c80319c',
        },
        { time: '2026-05-02T12:03:05.000Z', code: 'CONFIG_REJECTED', message: 'm'.repeat(300) },
      ],
      errorsTotal: 2,
    },
  };
}

t.test('every line fits 80 columns whatever the names, paths and numbers', async (t) => {
  const text = renderStatus(report());
  const lines = text.trimEnd().split('\n');
  t.same(lines.filter((line) => line.length > 80), []);
  t.match(text, /live, NOT READY/);
  t.match(text, /up 1d 02h/);
  t.match(text, /the last one was REJECTED at 2026-05-02 12:03:04Z:/);
  t.match(text, /^ {9}fourth$/m, 'a reload error is shown whole, every line');
  const reasonAt = lines.findIndex((line) => line.includes('listeners[0].routes[3].timeout:'));
  const reason = lines.slice(reasonAt, lines.findIndex((line) => line.endsWith('second line')));
  t.ok(reason.length >= 2, 'a long reload error line is wrapped, not cut');
  t.equal(reason.join(' ').match(/\breason\b/g)?.length, 10, 'every word of it is shown');
  t.notMatch(text, /very long r…/, 'no ellipsis inside the reason');
  t.match(text, new RegExp(`^ +${'m'.repeat(74)}$`, 'm'), 'a long error message is wrapped too');
  t.match(text, /UNHEALTHY/);
  t.match(text, /spans: 1 exported, 5 dropped/);
  t.match(text, /mtls/);
  t.match(text, /CONFIG_REJECTED/);
  t.equal(renderStatus(report(), 60).trimEnd().split('\n').filter((line) => line.length > 60).length, 0, 'and any other width');
});

t.test('/clusters details are folded in when recognisable, ignored otherwise', async (t) => {
  const base: ClusterStats = { ...cluster, name: 'app', breaker: null, endpoints: [{ ...cluster.endpoints[0], url: 'http://a:1', healthy: true }] };
  const fromArray = mergeClusterDetails([base], { clusters: [{ name: 'app', circuit: { state: 'half-open' }, endpoints: [{ url: 'http://a:1', healthy: false, ejected: true }] }] });
  t.equal(fromArray[0].breaker, 'half-open');
  t.equal(fromArray[0].endpoints[0].healthy, false);
  t.same(fromArray[0].endpoints[0].notes, ['ejected']);
  const fromMap = mergeClusterDetails([base], { app: { breaker: 'open', endpoints: [{ url: 'http://a:1', health: 'healthy' }] } });
  t.equal(fromMap[0].breaker, 'open');
  t.equal(fromMap[0].endpoints[0].healthy, true);
  const unknown = mergeClusterDetails([base], { whatever: 42 });
  t.equal(unknown[0].breaker, null);
  t.same(unknown[0].endpoints[0].notes, []);
  t.same(mergeClusterDetails([base], 'not json we know')[0].endpoints[0].healthy, true);
});

t.test('an endpoint nothing has checked is unknown, not healthy; reloads say when there were none', async (t) => {
  const fresh: ClusterStats = { ...cluster, name: 'app', breaker: null, endpoints: [{ ...cluster.endpoints[0], url: 'http://a:1', healthy: true, requests: 0, failures: 0 }] };
  t.equal(mergeClusterDetails([fresh], undefined)[0].endpoints[0].health, 'unknown', 'no attempt, no /clusters');
  const unchecked = { clusters: [{ name: 'app', endpoints: [{ url: 'http://a:1', healthy: true, healthCheck: { status: 'unchecked' } }] }] };
  t.equal(mergeClusterDetails([fresh], unchecked)[0].endpoints[0].health, 'unknown', 'the health check has not run yet');
  const checked = { clusters: [{ name: 'app', endpoints: [{ url: 'http://a:1', healthy: true, healthCheck: { status: 'healthy' } }] }] };
  t.equal(mergeClusterDetails([fresh], checked)[0].endpoints[0].health, 'healthy', 'a passed check');
  const used: ClusterStats = { ...fresh, endpoints: [{ ...fresh.endpoints[0], requests: 3 }] };
  t.equal(mergeClusterDetails([used], undefined)[0].endpoints[0].health, 'healthy', 'answered attempts');
  const down: ClusterStats = { ...fresh, endpoints: [{ ...fresh.endpoints[0], healthy: false }] };
  t.equal(mergeClusterDetails([down], undefined)[0].endpoints[0].health, 'unhealthy');

  const base = report();
  const text = renderStatus({
    ...base,
    clusters: mergeClusterDetails([fresh], undefined),
    stats: { ...base.stats, config: { ...base.stats.config, lastReload: { ok: true, at: null, error: null }, reloads: { success: 0, failure: 0 } } },
  });
  t.match(text, /^ +unknown  in flight \d+ .* unanswered 0\/0$/m, 'unknown, and the no-response count is not called a failure');
  t.notMatch(text, /healthy  in flight/);
  t.notMatch(text, /failure/i, 'the screen uses "failure" for nothing');
  t.match(text, /^reloads +none since start$/m);
});

t.test('the flight recorder: what it keeps, where the 5xx are, and each last error it has the timeline of', async (t) => {
  const base = report();
  const shortId = 'd9970e76-ec6b-4421-9fec-d8823388e5dc';
  const errors = [{ ...base.stats.recentErrors[0], requestId: shortId, method: 'GET', path: '/orders/42' }, ...base.stats.recentErrors];
  const on = renderStatus({ ...base, stats: { ...base.stats, recentErrors: errors }, recorder: { on: true, requests: 1000, failures: 12, recordedErrors: [shortId, 'x'.repeat(128)] } });
  t.match(on, /^recorder 1000 recent requests kept, and 12 that ended in a 5xx or an error\n {9}http:\/\/127\.0\.0\.1:9901\/requests\?status=5xx$/m);
  t.match(on, new RegExp(`request ${shortId}.*\\n.*\\n {6}http://127\\.0\\.0\\.1:9901/requests/${shortId}$`, 'm'), 'the timeline of a recorded error, under its ids');
  t.match(on, /^ {6}its timeline: GET \/requests\/\{request id\} on the admin listener$/m, 'a URL too long for the screen is not cut');
  t.same(on.trimEnd().split('\n').filter((line) => line.length > 80), [], 'every line fits');
  t.equal(on.match(/9901\/requests\//g)?.length, 1, 'one timeline URL: the other long id gets the hint');

  const notRecorded = renderStatus({ ...base, stats: { ...base.stats, recentErrors: errors }, recorder: { on: true, requests: 3, failures: 0, recordedErrors: [] } });
  t.notMatch(notRecorded, /\/requests/, 'no link to a timeline the recorder does not have, nor to an empty list of 5xx');
  t.match(notRecorded, /^recorder 3 recent requests kept, and 0 that ended/m);

  t.match(renderStatus({ ...base, recorder: { on: false } }), /^recorder off \(admin\.recorder: false\)$/m);
  t.notMatch(renderStatus(base), /recorder/, 'a sidecar without /requests: no line');
});

t.test('wrap', async (t) => {
  t.same(wrap('one two three', 9, '  '), ['  one two', '  three']);
  t.same(wrap('abcdefghij', 6, ' '), [' abcde', ' fghij'], 'a word longer than the room is broken');
  t.same(wrap('', 10, '  '), ['  ']);
});

t.test('number formats', async (t) => {
  t.equal(formatUptime(42), '42s');
  t.equal(formatUptime(3 * 60 + 5), '3m 05s');
  t.equal(formatUptime(2 * 3600 + 3 * 60), '2h 03m');
  t.equal(formatPercent(null), '-');
  t.equal(formatPercent(0.0123), '1.2%');
  t.equal(formatMs(0.42), '0.42ms');
  t.equal(formatMs(42.4), '42ms');
  t.equal(formatMs(1234), '1.23s');
  t.equal(fit('abcdef', 4), 'abc…');
});

t.test('collectStatus says what is wrong with an admin address that is not a sidecar', async (t) => {
  const hanging = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    if (req.url === '/stats') res.end('<html>a web page</html>');
    else if (req.url === '/live' && req.headers['x-hang'] === undefined) res.end('live');
    else hanging.add(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const error: unknown = await collectStatus(url, { timeoutMs: 300 }).catch((e: unknown) => e);
  t.ok(error instanceof StatusError, 'a StatusError');
  t.match(String(error), /no answer within 300 ms/, 'a listener that never answers');
  server.removeAllListeners('request');
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => res.end(req.url === '/stats' ? '<html>a web page</html>' : 'ok'));
  await t.rejects(collectStatus(url, { timeoutMs: 1_000 }), /\/stats answered 200 with an unexpected body: is this a sidecar admin listener\?/);
});
