/**
 * Request smuggling over raw sockets: every framing the sidecar and the app could read
 * differently is refused with 400, the connection is closed, and the app never sees the
 * request hidden behind it.
 */
import t from 'tap';
import { request } from 'undici';
import { rawExchange } from '../helpers/raw';
import { startSidecarFor } from '../helpers/sidecar';
import { startUpstream } from '../helpers/upstream';

const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: app\r\n\r\n';

/** Each payload ends with a second, smuggled request; none may reach the app. */
const PAYLOADS: ReadonlyArray<readonly [string, string]> = [
  ['Content-Length with Transfer-Encoding', 'POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ['Transfer-Encoding with Content-Length', 'POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n'],
  ['two different Content-Lengths', 'POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd'],
  ['two equal Content-Lengths', 'POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd'],
  ['Content-Length list', 'POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 4, 4\r\n\r\nabcd'],
  ['signed Content-Length', 'POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: +4\r\n\r\nabcd'],
  ['obs-fold header', 'GET / HTTP/1.1\r\nHost: app\r\nX-Folded: a\r\n b\r\n\r\n'],
  ['obs-fold Transfer-Encoding', 'POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n'],
  ['space before colon', 'POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n'],
  ['Transfer-Encoding chunked, then identity', 'POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n'],
  ['Transfer-Encoding not ending in chunked', 'POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n'],
  ['Transfer-Encoding xchunked', 'POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n'],
  ['Transfer-Encoding gzip, chunked', 'POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'],
  ['HTTP/1.0 with Transfer-Encoding', 'POST /upload HTTP/1.0\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ['chunk size not hex', 'POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'],
  ['chunk size 0x prefix', 'POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n'],
  ['negative chunk size', 'POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n'],
  ['chunk size overflow', 'POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n'],
  ['chunk size with a space', 'POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n'],
  ['chunk longer than its size', 'POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n'],
  ['bad second chunk', 'POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n0\r\n\r\n'],
  ['bare LF in chunked body', 'POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n'],
  ['bare LF line endings', 'GET / HTTP/1.1\nHost: app\n\n'],
  ['bare LF after a header', 'GET / HTTP/1.1\r\nHost: app\nX-A: b\r\n\r\n'],
  ['bare CR after a header', 'GET / HTTP/1.1\r\nHost: app\rX-A: b\r\n\r\n'],
  ['NUL in a header value', 'GET / HTTP/1.1\r\nHost: app\r\nX-A: a\u0000b\r\n\r\n'],
  ['two Host headers', 'GET / HTTP/1.1\r\nHost: app\r\nHost: admin.internal\r\n\r\n'],
  ['Host with a path', 'GET / HTTP/1.1\r\nHost: app/admin\r\n\r\n'],
  ['no Host header', 'GET / HTTP/1.1\r\n\r\n'],
  ['absolute-form target for another host', 'GET http://admin.internal/ HTTP/1.1\r\nHost: app\r\n\r\n'],
  ['lower-case method', 'get / HTTP/1.1\r\nHost: app\r\n\r\n'],
];

t.test('smuggling attempts: 400, connection closed, the app sees no smuggled request', async (t) => {
  const seen: string[] = [];
  const app = await startUpstream((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.end('app'));
  });
  const port = (await startSidecarFor(t, app)).port();

  for (const [name, payload] of PAYLOADS) {
    const answer = await rawExchange(port, payload + SMUGGLED);
    t.equal(answer.closedBy, 'server', `${name}: the sidecar closed the connection`);
    t.same(answer.statuses, [400], `${name}: one answer, 400`);
    t.match(answer.text, /x-sidecar-error: BAD_REQUEST/i, `${name}: names the error`);
  }
  t.notOk(seen.some((line) => line.includes('/smuggled')), 'the app never saw a smuggled request');
  // Only requests whose headers were valid and whose body broke later may have started.
  t.ok(seen.every((line) => line === 'POST /upload'), `the app saw only the streamed uploads: ${JSON.stringify(seen)}`);

  const after = await request(`http://127.0.0.1:${port}/after`);
  t.equal(await after.body.text(), 'app', 'the listener still serves');
});

t.test('a malformed request pipelined after a valid one: the valid one is answered first', async (t) => {
  const seen: string[] = [];
  const app = await startUpstream((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.end('app'));
  });
  const port = (await startSidecarFor(t, app)).port();

  const answer = await rawExchange(
    port,
    'POST /first HTTP/1.1\r\nHost: app\r\nContent-Length: 3\r\n\r\nabc' + 'GET /second HTTP/1.1\nHost: app\r\n\r\n' + SMUGGLED,
  );
  t.equal(answer.closedBy, 'server');
  t.same(answer.statuses, [200, 400], 'the app\'s answer to the valid request, then 400 for the malformed one');
  t.same(seen, ['POST /first'], 'the app saw the valid request only');
});

t.test('valid pipelined requests are still served in order', async (t) => {
  const app = await startUpstream((req, res) => res.end(req.url));
  const proxy = await startSidecarFor(t, app);
  const answer = await rawExchange(
    proxy.port(),
    'GET /one HTTP/1.1\r\nHost: app\r\n\r\nGET /two HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n',
  );
  t.same(answer.statuses, [200, 200]);
  t.ok(answer.text.indexOf('/one') < answer.text.indexOf('/two'), 'in order');
});
