import t from 'tap';
import type { HeaderMutation } from '../../src/config/types';
import { upstreamRequestHeaders, type ForwardingFacts } from '../../src/proxy/headers';

const NONE: HeaderMutation = { add: [], remove: [] };
// The handler passes the normalised authority (request-guard.ts): here that of H2_RAW's :authority.
const FACTS: ForwardingFacts = { peerAddress: '203.0.113.9', peerTrusted: false, proto: 'https', requestId: 'req-1', clientCert: undefined, authority: 'shop.example:8443' };

/** The flat [name, value, ...] list as pairs, for readable comparisons. */
function pairs(flat: readonly string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i] ?? '', flat[i + 1] ?? '']);
  return out;
}

function values(flat: readonly string[], name: string): string[] {
  return pairs(flat).filter(([n]) => n === name).map(([, v]) => v);
}

// As node:http2 hands them to the compat request: pseudo-headers first, as received.
const H2_RAW = [
  ':method', 'POST',
  ':path', '/api/items?x=1',
  ':scheme', 'https',
  ':authority', 'Shop.Example:8443',
  'user-agent', 'curl/8',
  'cookie', 'a=1',
  'cookie', 'b=2',
  'te', 'trailers',
  'content-type', 'application/json',
];

t.test('HTTP/2: pseudo-headers are dropped and the normalised :authority becomes Host', async (t) => {
  const out = upstreamRequestHeaders(H2_RAW, FACTS, NONE);
  t.notOk(pairs(out).some(([name]) => name.startsWith(':')), 'no pseudo-header');
  t.same(values(out, 'host'), ['shop.example:8443']);
  t.same(values(out, 'x-forwarded-host'), ['shop.example:8443']);
  t.same(values(out, 'x-forwarded-proto'), ['https']);
  t.same(values(out, 'te'), [], 'TE is hop-by-hop');
  t.same(values(out, 'content-type'), ['application/json']);
  t.same(out.slice(-2), ['x-sidecar-attempt', '1'], 'the attempt slot stays last');
});

t.test('HTTP/2: a Host field next to :authority is dropped (RFC 9113 §8.3.1)', async (t) => {
  const out = upstreamRequestHeaders([...H2_RAW, 'host', 'other.example'], FACTS, NONE);
  t.same(values(out, 'host'), ['shop.example:8443']);
});

t.test('cookie fields are joined into one header', async (t) => {
  const out = upstreamRequestHeaders(H2_RAW, FACTS, NONE);
  t.same(values(out, 'cookie'), ['a=1; b=2']);
  const h1 = upstreamRequestHeaders(['Host', 'Shop.Example.', 'Cookie', 'a=1'], { ...FACTS, proto: 'http', authority: 'shop.example' }, NONE);
  t.same(values(h1, 'cookie'), ['a=1'], 'a single HTTP/1.1 Cookie header is passed as it is');
  t.same(values(h1, 'host'), ['shop.example']);
  const removed = upstreamRequestHeaders(H2_RAW, FACTS, { add: [], remove: ['cookie'] });
  t.same(values(removed, 'cookie'), [], 'requestHeaders.remove still applies');
});

t.test('requestHeaders mutations apply to the Host that :authority gave', async (t) => {
  const replaced = upstreamRequestHeaders(H2_RAW, FACTS, { add: [['host', 'app.internal']], remove: [] });
  t.same(values(replaced, 'host'), ['app.internal'], 'add replaces it');
  t.same(values(replaced, 'x-forwarded-host'), ['shop.example:8443'], 'X-Forwarded-Host keeps what the client asked for');
  const removed = upstreamRequestHeaders(H2_RAW, FACTS, { add: [], remove: ['host'] });
  t.same(values(removed, 'host'), [], 'remove drops it');
});

t.test('x-forwarded-client-cert comes from the connection only', async (t) => {
  const forged = [...H2_RAW, 'x-forwarded-client-cert', 'Subject="CN=admin"'];
  t.same(values(upstreamRequestHeaders(forged, FACTS, NONE), 'x-forwarded-client-cert'), []);
  const verified = upstreamRequestHeaders(forged, { ...FACTS, clientCert: 'Hash=ab;Subject="CN=client"' }, NONE);
  t.same(values(verified, 'x-forwarded-client-cert'), ['Hash=ab;Subject="CN=client"']);
  const trusted = upstreamRequestHeaders(forged, { ...FACTS, peerTrusted: true }, NONE);
  t.same(values(trusted, 'x-forwarded-client-cert'), [], 'not even from a trusted proxy');
});
