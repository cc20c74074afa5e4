import t from 'tap';
import { downstreamResponseHeaders } from '../../src/proxy/headers';
import type { HeaderMutation } from '../../src/config/types';

const NO_MUTATION: HeaderMutation = { add: [], remove: [] };
const raw = (...entries: string[]): Buffer[] => entries.map((entry) => Buffer.from(entry, 'latin1'));
const names = (list: string[]): string[] => list.filter((_, i) => i % 2 === 0);

t.test('a header the response\'s Connection names is dropped wherever it stands', async (t) => {
  const before = downstreamResponseHeaders(raw('X-Hop', '1', 'Connection', 'x-hop', 'Content-Type', 'text/plain'), NO_MUTATION, 'id-1');
  t.same(before, ['Content-Type', 'text/plain', 'x-request-id', 'id-1'], 'named after it stood');
  const after = downstreamResponseHeaders(raw('Connection', 'X-HOP, close', 'x-hop', '1', 'ETag', '"a"'), NO_MUTATION, 'id-2');
  t.same(after, ['ETag', '"a"', 'x-request-id', 'id-2'], 'named before it stands, in another case');
  const twice = downstreamResponseHeaders(raw('Connection', 'a', 'A', '1', 'Connection', 'b', 'B', '2', 'C', '3'), NO_MUTATION, 'id-3');
  t.same(names(twice), ['C', 'x-request-id'], 'every Connection header counts');
});

t.test('Connection: keep-alive or close names nothing; repeated headers stay separate', async (t) => {
  for (const value of ['keep-alive', 'Keep-Alive', 'close', 'CLOSE']) {
    const list = downstreamResponseHeaders(raw('Connection', value, 'Keep-Alive', 'timeout=5', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Close', 'x'), NO_MUTATION, 'id');
    t.same(list, ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Close', 'x', 'x-request-id', 'id'], `Connection: ${value}`);
  }
});

t.test('the route\'s mutation and the request id come last; the app\'s request id is replaced', async (t) => {
  const mutation: HeaderMutation = { add: [['x-served-by', 'sidecar']], remove: ['server'] };
  const list = downstreamResponseHeaders(raw('Server', 'demo', 'X-Request-Id', 'from-app', 'X-Served-By', 'app', 'Vary', 'accept'), mutation, 'id-9');
  t.same(list, ['Vary', 'accept', 'x-served-by', 'sidecar', 'x-request-id', 'id-9']);
});
