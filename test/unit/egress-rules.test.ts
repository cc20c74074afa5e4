import t from 'tap';
import { allowedBy, formatDestination, parseConnectTarget, parseEgressRule, type EgressRule } from '../../src/config/egress';

function rules(...texts: string[]): EgressRule[] {
  return texts.map((text) => {
    const rule = parseEgressRule(text);
    if (typeof rule === 'string') throw new Error(rule);
    return rule;
  });
}

function allowed(list: EgressRule[], target: string): string | undefined {
  const destination = parseConnectTarget(target);
  if (destination === undefined) throw new Error(`bad target ${target}`);
  return allowedBy(list, destination)?.text;
}

t.test('wildcards match names under the domain, not the domain itself', async (t) => {
  const list = rules('*.example:443');
  t.equal(allowed(list, 'api.example:443'), '*.example:443');
  t.equal(allowed(list, 'a.b.example:443'), '*.example:443');
  t.equal(allowed(list, 'example:443'), undefined);
  t.equal(allowed(list, 'api.example:80'), undefined, 'the port must match when given');
  t.equal(allowed(list, 'evilexample:443'), undefined, 'a suffix without the dot is another domain');
  t.equal(allowed(list, 'api.example.evil:443'), undefined);
});

t.test('names compare case-insensitively and without a trailing dot; no port means any port', async (t) => {
  const list = rules('API.Example');
  t.equal(allowed(list, 'api.example:443'), 'API.Example');
  t.equal(allowed(list, 'Api.Example.:8443'), 'API.Example');
  t.equal(allowed(list, 'x.api.example:443'), undefined);
});

t.test('IP addresses, v6 in brackets; the first matching entry wins', async (t) => {
  const list = rules('10.0.0.1:8443', '[::1]:443', '*.example');
  t.equal(allowed(list, '10.0.0.1:8443'), '10.0.0.1:8443');
  t.equal(allowed(list, '10.0.0.1:8444'), undefined);
  t.equal(allowed(list, '[::1]:443'), '[::1]:443');
  t.equal(formatDestination({ host: '::1', port: 443 }), '[::1]:443');
});

t.test('malformed targets and entries', async (t) => {
  for (const target of ['api.example', 'api.example:', 'api.example:0', 'api.example:65536', '::1:443', '[zz]:443', 'a b:443', 'http://x:1']) {
    t.equal(parseConnectTarget(target), undefined, target);
  }
  for (const entry of ['*', '*:443', 'https://api.example', 'api.example:0', '*.10.0.0.1', 'a..b', '']) {
    t.type(parseEgressRule(entry), 'string', JSON.stringify(entry));
  }
});
