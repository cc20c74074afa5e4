/**
 * The HTTP/2 client of `protocol: http2` clusters (src/upstream/http2-pool.ts) against real
 * node:http2 apps: streams per connection within the app's SETTINGS_MAX_CONCURRENT_STREAMS,
 * connections within maxConnections, a cold burst opening only the connections it needs,
 * GOAWAY (unprocessed streams sent again), a session destroyed under its streams, oversized
 * response headers, and a response that stalls.
 */

import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { makeTestPki } from '../helpers/certs';
import { listenH2App, startSidecarToH2App } from '../helpers/h2-app';
import { startSidecar, type RunningSidecar } from '../helpers/sidecar';
import { waitUntil } from '../helpers/wait';

interface StreamSeen {
  readonly session: number;
  readonly id: number;
  readonly path: string;
  readonly attempt: string | undefined;
}

interface H2App {
  readonly url: string;
  /** Sessions (connections) the app accepted, numbered from 1. */
  sessions: number;
  /** Streams open on each session right now, and the most ever open on one. */
  mostOpenOnOneSession: number;
  readonly seen: StreamSeen[];
  close(): Promise<void>;
}

type StreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, session: http2.ServerHttp2Session, sessionNumber: number) => void;

async function startH2App(handler: StreamHandler, settings: http2.Settings = {}): Promise<H2App> {
  const server = http2.createServer({ settings });
  const app: H2App = { url: '', sessions: 0, mostOpenOnOneSession: 0, seen: [], close: async () => {} };
  const numbers = new WeakMap<http2.ServerHttp2Session, number>();
  const open = new Map<number, number>();
  server.on('session', (session: http2.ServerHttp2Session) => {
    numbers.set(session, ++app.sessions);
    session.on('error', () => {});
  });
  server.on('stream', (stream, headers) => {
    const session = stream.session as http2.ServerHttp2Session;
    const number = numbers.get(session) ?? 0;
    const now = (open.get(number) ?? 0) + 1;
    open.set(number, now);
    app.mostOpenOnOneSession = Math.max(app.mostOpenOnOneSession, now);
    stream.on('close', () => open.set(number, (open.get(number) ?? 1) - 1));
    stream.on('error', () => {});
    const attempt = headers['x-sidecar-attempt'];
    app.seen.push({ session: number, id: stream.id ?? 0, path: String(headers[':path']), attempt: typeof attempt === 'string' ? attempt : undefined });
    handler(stream, headers, session, number);
  });
  Object.assign(app, await listenH2App(server));
  return app;
}

interface Answer {
  readonly status: number;
  readonly error: string | null;
  readonly body: string;
}

/** One HTTP/1.1 request through the sidecar (a fresh connection each: no client-side pooling in the way). */
function get(proxy: RunningSidecar, path: string, method = 'GET', body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${proxy.url()}${path}`, { method, agent: false, headers: body === undefined ? {} : { 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, error: (res.headers['x-sidecar-error'] as string | undefined) ?? null, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function answerLater(stream: http2.ServerHttp2Stream, ms: number, text: string): void {
  stream.resume();
  setTimeout(() => {
    if (stream.destroyed || stream.closed) return;
    stream.respond({ ':status': 200 });
    stream.end(text);
  }, ms);
}

t.test('SETTINGS_MAX_CONCURRENT_STREAMS 5, maxConnections 3: at most 5 streams per connection, at most 3 connections, the rest wait and all complete', async (t) => {
  const app = await startH2App((stream, headers) => answerLater(stream, 30, String(headers[':path'])), { maxConcurrentStreams: 5 });
  const proxy = await startSidecarToH2App(t, app, ', maxConnections: 3');
  const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => get(proxy, `/r${i}`)));
  t.same(
    answers.map((a) => a.status),
    answers.map(() => 200),
    'every request answered 200',
  );
  t.same(
    answers.map((a) => a.body),
    answers.map((_, i) => `/r${i}`),
    'each with its own answer',
  );
  t.ok(app.mostOpenOnOneSession <= 5, `at most 5 streams open on one connection (${app.mostOpenOnOneSession})`);
  t.equal(app.mostOpenOnOneSession, 5, 'and the connections were filled to the limit');
  t.ok(app.sessions <= 3, `at most maxConnections connections (${app.sessions})`);
  t.equal(app.sessions, 3, 'a connection was opened once the others were full, up to maxConnections');
});

for (const [appLimit, expected] of [
  [undefined, 1],
  [10, 10],
] as const) {
  t.test(`a burst of 100 concurrent POSTs on a cold pool (app limit ${appLimit ?? 'none'}) opens at most ${expected} connection(s)`, async (t) => {
    const app = await startH2App(
      (stream, headers) => {
        let body = '';
        stream.setEncoding('utf8');
        stream.on('data', (c: string) => (body += c));
        stream.on('end', () => {
          stream.respond({ ':status': 200 });
          stream.end(`${String(headers[':path'])}:${body}`);
        });
      },
      appLimit === undefined ? {} : { maxConcurrentStreams: appLimit },
    );
    const proxy = await startSidecarToH2App(t, app);
    t.equal(app.sessions, 0, 'the pool is cold');
    // An HTTP/2 client: all 100 arrive together, each with a streamed body.
    const session = http2.connect(`http://127.0.0.1:${proxy.port()}`);
    t.teardown(() => session.close());
    await once(session, 'remoteSettings');
    const answers = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const stream = session.request({ ':method': 'POST', ':path': `/p${i}` });
        stream.end(`body${i}`);
        let text = '';
        stream.setEncoding('utf8');
        stream.on('data', (c: string) => (text += c));
        const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
        await once(stream, 'end');
        return { status: headers[':status'], text };
      }),
    );
    t.same(
      answers.map((a) => a.status),
      answers.map(() => 200),
      'every POST answered',
    );
    t.same(
      answers.map((a) => a.text),
      answers.map((_, i) => `/p${i}:body${i}`),
      'each body reached the app whole',
    );
    t.ok(app.sessions <= expected, `the app accepted ${app.sessions} connection(s), at most ceil(100 / streams per connection) = ${expected}`);
  });
}

t.test('GOAWAY mid-flight: the streams above its last stream id are sent again on a new connection, and the client gets 200', async (t) => {
  // The first connection's app answers the streams up to the third of the burst and sends
  // GOAWAY naming it as the last; it never answers those above. The second connection answers all.
  let lastProcessed = 0;
  const app = await startH2App((stream, headers, session, number) => {
    stream.resume();
    const path = String(headers[':path']);
    if (number === 1 && path !== '/warm') {
      const id = stream.id ?? 0;
      if (lastProcessed === 0 && app.seen.filter((s) => s.session === 1 && s.path !== '/warm').length === 3) {
        lastProcessed = id;
        session.goaway(http2.constants.NGHTTP2_NO_ERROR, id);
      }
      if (lastProcessed !== 0 && id > lastProcessed) return; // not processed
    }
    answerLater(stream, 20, `${number}:${path}`);
  });
  const proxy = await startSidecarToH2App(t, app);
  t.equal((await get(proxy, '/warm')).status, 200, 'the warm-up request opened the connection');
  const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => get(proxy, `/g${i}`)));
  t.same(
    answers.map((a) => `${a.status} ${a.error}`),
    answers.map(() => '200 null'),
    'every request answered 200',
  );
  const second = answers.filter((a) => a.body.startsWith('2:'));
  t.ok(second.length >= 1, `some were answered on the new connection (${second.length})`);
  t.equal(answers.filter((a) => a.body.startsWith('1:')).length, 3, 'the streams up to the last stream id were answered on the first');
  // (Requests dispatched after the GOAWAY go to the new connection as first attempts.)
  const resent = app.seen.filter((s) => s.attempt === '2');
  t.ok(resent.length >= 1, `the unprocessed ones were sent again as attempt 2 (${resent.length})`);
  t.ok(
    resent.every((s) => s.session === 2),
    'on the new connection',
  );
  t.equal(app.seen.filter((s) => s.session === 1 && s.attempt === '2').length, 0, 'never on the connection that sent GOAWAY');
  // A POST is sent again too (the app did not process it), its body kept whole for the retry.
  const post = await get(proxy, '/after', 'POST', 'data');
  t.equal(post.status, 200, 'a later POST is answered');
});

t.test('the app destroys its session with streams in flight: each gets 502 with x-sidecar-error, and the sidecar goes on', async (t) => {
  let destroyed = false;
  const app = await startH2App((stream, headers, session, number) => {
    stream.resume();
    if (number === 1 && !destroyed && app.seen.filter((s) => s.session === 1 && s.path !== '/warm').length === 3) {
      destroyed = true;
      // All three streams were received (and so processed): none may be sent again.
      setTimeout(() => session.destroy(), 10);
      return;
    }
    if (number === 1 && String(headers[':path']) !== '/warm') return; // held until the destroy
    answerLater(stream, 0, `${number}`);
  });
  const proxy = await startSidecarToH2App(t, app);
  t.equal((await get(proxy, '/warm')).status, 200);
  const answers = await Promise.all(Array.from({ length: 3 }, (_, i) => get(proxy, `/d${i}`)));
  for (const a of answers) {
    t.ok(a.status === 502 || a.status === 503, `answered ${a.status}`);
    t.match(a.error, /^UPSTREAM_(RESET|CONNECT_FAILURE)$/, `with x-sidecar-error ${a.error}`);
  }
  const after = await get(proxy, '/after');
  t.equal(after.status, 200, 'a later request is answered on a new connection');
  t.equal(after.body, '2');
});

t.test('response headers over maxResponseHeaderBytes: 502 UPSTREAM_PROTOCOL_ERROR, and the connection goes on', async (t) => {
  const app = await startH2App((stream, headers) => {
    stream.resume();
    const big = headers[':path'] === '/big';
    try {
      stream.respond({ ':status': 200, ...(big ? { 'x-big': 'a'.repeat(8_000) } : {}) });
      stream.end('ok');
    } catch {
      // node may refuse to send a header list over the client's SETTINGS_MAX_HEADER_LIST_SIZE.
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  });
  const proxy = await startSidecarToH2App(t, app, ', maxResponseHeaderBytes: 4096');
  const big = await get(proxy, '/big');
  t.equal(big.status, 502);
  t.equal(big.error, 'UPSTREAM_PROTOCOL_ERROR');
  const small = await get(proxy, '/small');
  t.equal(small.status, 200, 'a request with small headers is answered');
  t.equal(app.sessions, 1, 'on the same connection');
});

t.test('a response that stalls: before its headers 504 UPSTREAM_TIMEOUT; mid-body the response is cut and logged as the upstream timeout', async (t) => {
  const app = await startH2App((stream, headers) => {
    stream.resume();
    if (headers[':path'] === '/body-stall') {
      stream.respond({ ':status': 200 });
      stream.write('first chunk');
    }
    // /head-stall: nothing at all
  });
  const proxyShort = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: all, match: { prefix: / }, cluster: app, timeout: 300ms }
clusters:
  - { name: app, protocol: http2, endpoints: [{ url: ${app.url} }] }
`);
  t.teardown(async () => {
    await proxyShort.close();
    await app.close();
  });
  const head = await get(proxyShort, '/head-stall');
  t.equal(head.status, 504);
  t.equal(head.error, 'UPSTREAM_TIMEOUT');

  const cut = await new Promise<{ status: number; body: string; aborted: boolean }>((resolve) => {
    const req = http.get(`${proxyShort.url()}/body-stall`, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, aborted: !res.complete }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body, aborted: true }));
    });
    req.on('error', () => resolve({ status: 0, body: '', aborted: true }));
  });
  t.equal(cut.status, 200, 'the headers had gone out');
  t.equal(cut.body, 'first chunk', 'with the first chunk');
  t.ok(cut.aborted, 'and the response was cut, not ended as if whole');
  await waitUntil(() => proxyShort.accessLog.some((e) => e.path === '/body-stall'), 'the access log line of the stalled response');
  const line = proxyShort.accessLog.find((e) => e.path === '/body-stall');
  t.equal(line?.error, 'UPSTREAM_TIMEOUT', 'logged as the upstream timeout');
  t.match(line?.flags, /^UT\b/, 'flagged UT (the cut client connection adds DC)');
});

t.test('https:// endpoints: HTTP/2 negotiated by ALPN with mTLS; an app that negotiates only http/1.1 fails clearly', async (t) => {
  const pki = await makeTestPki(t.testdir());
  const servers: { close(cb: () => void): void }[] = [];
  t.teardown(() => Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))));
  const seen: { version: string; servername: string | undefined; clientCert: boolean }[] = [];
  const h2app = http2.createSecureServer({ key: pki.serverKey, cert: pki.serverCert, ca: pki.ca, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const socket = req.stream.session?.socket as TLSSocket | undefined;
    seen.push({ version: req.httpVersion, servername: (socket as (TLSSocket & { servername?: string }) | undefined)?.servername, clientCert: socket?.getPeerCertificate().subject !== undefined });
    res.end('secure h2');
  });
  const h1app = https.createServer({ key: pki.serverKey, cert: pki.serverCert, ALPNProtocols: ['http/1.1'] }, (_req, res) => res.end('h1 only'));
  for (const server of [h2app, h1app]) {
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  }
  const port = (server: { address(): unknown }): number => (server.address() as AddressInfo).port;
  const tls = `{ ca: ${JSON.stringify(pki.caCertPath)}, cert: ${JSON.stringify(pki.clientCertPath)}, key: ${JSON.stringify(pki.clientKeyPath)} }`;
  const proxy = await startSidecar(`
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: h2, match: { prefix: /h2 }, cluster: h2app }
      - { name: h1, match: { prefix: /h1 }, cluster: h1app }
clusters:
  - { name: h2app, protocol: http2, endpoints: [{ url: https://localhost:${port(h2app)} }], tls: ${tls} }
  - { name: h1app, protocol: http2, endpoints: [{ url: https://localhost:${port(h1app)} }], tls: ${tls} }
`);
  t.teardown(() => proxy.close());
  const good = await get(proxy, '/h2');
  t.equal(good.status, 200);
  t.equal(good.body, 'secure h2');
  t.same(seen, [{ version: '2.0', servername: 'localhost', clientCert: true }], 'HTTP/2 over TLS, SNI the endpoint host, with the client certificate');
  const bad = await get(proxy, '/h1');
  t.equal(bad.status, 502);
  t.equal(bad.error, 'UPSTREAM_PROTOCOL_ERROR', 'an app without h2 by ALPN is a protocol error');
});

t.test('an idle connection closes after idleTimeout; the next request opens another', async (t) => {
  let closedSessions = 0;
  const app = await startH2App((stream, _headers, session, number) => {
    session.once('close', () => closedSessions++);
    answerLater(stream, 0, `${number}`);
  });
  const proxy = await startSidecarToH2App(t, app, ', idleTimeout: 200ms');
  t.equal((await get(proxy, '/one')).body, '1');
  await waitUntil(() => closedSessions === 1, 'the idle connection to close');
  t.equal((await get(proxy, '/two')).body, '2', 'a new connection for the next request');
});
