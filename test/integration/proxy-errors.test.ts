import t, { type Test } from 'tap';
import { request } from 'undici';
import { closedPort, startUpstream } from '../helpers/upstream';
import { simpleConfig, startSidecar } from '../helpers/sidecar';

async function expectSidecarError(t: Test, url: string, status: number, code: string): Promise<void> {
  const res = await request(url);
  const body = (await res.body.json()) as { error: string; message: string; requestId: string };
  t.equal(res.statusCode, status, `${code}: status`);
  t.equal(res.headers['x-sidecar-error'], code, `${code}: x-sidecar-error header`);
  t.equal(body.error, code, `${code}: JSON body names the code`);
  t.equal(body.requestId, res.headers['x-request-id'], `${code}: body carries the request id`);
  t.type(body.message, 'string');
}


t.test('upstream refused → 503 UPSTREAM_CONNECT_FAILURE', async (t) => {
  const port = await closedPort();
  const proxy = await startSidecar(simpleConfig(`http://127.0.0.1:${port}`));
  t.teardown(() => proxy.close());
  await expectSidecarError(t, `${proxy.url()}/`, 503, 'UPSTREAM_CONNECT_FAILURE');
  t.equal(proxy.accessLog.at(-1)?.error, 'UPSTREAM_CONNECT_FAILURE', 'the access log names the error');
});

t.test('upstream resets before headers → 502 UPSTREAM_RESET', async (t) => {
  const app = await startUpstream((req) => req.socket.destroy());
  const proxy = await startSidecar(simpleConfig(app.url));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  await expectSidecarError(t, `${proxy.url()}/`, 502, 'UPSTREAM_RESET');
});

t.test('upstream slower than the route timeout → 504 UPSTREAM_TIMEOUT', async (t) => {
  const pending: Array<() => void> = [];
  const app = await startUpstream((_req, res) => pending.push(() => res.end('late')));
  const proxy = await startSidecar(simpleConfig(app.url, 'timeout: 200ms'));
  t.teardown(async () => {
    for (const finish of pending) finish();
    await proxy.close();
    await app.close();
  });
  const started = performance.now();
  await expectSidecarError(t, `${proxy.url()}/`, 504, 'UPSTREAM_TIMEOUT');
  const elapsed = performance.now() - started;
  t.ok(elapsed >= 190, `answered after the timeout (${elapsed.toFixed(0)} ms)`);
});

t.test('no route → 404 NO_ROUTE', async (t) => {
  const yaml = `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: api
        match: { prefix: /api }
        directResponse: { status: 200, body: api }
`;
  const proxy = await startSidecar(yaml);
  t.teardown(() => proxy.close());
  await expectSidecarError(t, `${proxy.url()}/elsewhere`, 404, 'NO_ROUTE');
  t.equal(proxy.accessLog.at(-1)?.flags, 'NR');
});

t.test('a malformed request gets a 400 and the process lives on', async (t) => {
  const app = await startUpstream((_req, res) => res.end('ok'));
  const proxy = await startSidecar(simpleConfig(app.url));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const net = await import('node:net');
  const port = Number(new URL(proxy.url()).port);
  const answer = await new Promise<string>((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'));
    let data = '';
    socket.on('data', (c) => (data += c.toString()));
    socket.on('close', () => resolve(data));
  });
  t.match(answer, /^HTTP\/1\.1 400 /);
  t.match(answer, /x-sidecar-error: BAD_REQUEST/);
  const after = await request(`${proxy.url()}/`);
  t.equal(await after.body.text(), 'ok', 'still serving');
});
