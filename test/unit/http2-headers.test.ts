import t from 'tap';
import { http2RequestHeaders, rawResponseHeaders, trailersToSend } from '../../src/upstream/http2-headers';

t.test('request headers: host becomes :authority, connection-specific fields are left out, te only as trailers', async (t) => {
  const headers = http2RequestHeaders(
    ['host', 'app.example', 'Connection', 'keep-alive', 'keep-alive', 'timeout=5', 'transfer-encoding', 'chunked', 'upgrade', 'h2c', 'te', 'gzip', 'x-a', '1', 'x-a', '2', 'cookie', 'a=1', 'cookie', 'b=2'],
    'POST',
    '/p?q=1',
    'http',
    '127.0.0.1:8080',
  );
  t.same(headers, { ':method': 'POST', ':path': '/p?q=1', ':scheme': 'http', ':authority': 'app.example', 'x-a': ['1', '2'], cookie: ['a=1', 'b=2'] });
  t.equal(http2RequestHeaders(['te', 'Trailers'], 'GET', '/', 'https', 'h:1').te, 'Trailers', 'te: trailers is passed');
  t.equal(http2RequestHeaders([], 'GET', '/', 'https', 'h:1')[':authority'], 'h:1', 'no host: the origin');
  t.equal(http2RequestHeaders(['x-client-pseudo', 'v', ':path', '/evil'], 'GET', '/', 'http', 'h')[':path'], '/', 'a pseudo-header in the list never replaces the request\'s');
});

t.test('response headers: raw Latin-1 buffers, pseudo-headers left out, repeated names kept apart', async (t) => {
  const raw = rawResponseHeaders({ ':status': 200, 'set-cookie': ['a=1', 'b=2'], 'x-latin': 'caf\u00e9' } as unknown as Parameters<typeof rawResponseHeaders>[0]);
  t.same(
    raw.map((b) => b.toString('latin1')),
    ['set-cookie', 'a=1', 'set-cookie', 'b=2', 'x-latin', 'caf\u00e9'],
  );
});

t.test('request trailers: pseudo, connection-specific and RFC 9110 §6.5.1 fields are left out; none left is undefined', async (t) => {
  t.same(trailersToSend({ 'x-checksum': 'abc', ':path': '/x', connection: 'close', 'content-length': '3', authorization: 'secret', host: 'h', te: 'trailers', 'grpc-x': ['1', '2'] }), {
    'x-checksum': 'abc',
    'grpc-x': ['1', '2'],
  });
  t.equal(trailersToSend({ 'content-length': '3' }), undefined);
  t.equal(trailersToSend({}), undefined);
  t.equal(trailersToSend(undefined), undefined);
});
