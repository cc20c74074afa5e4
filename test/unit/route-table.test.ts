import t from 'tap';
import { parseConfigText } from '../../src/config/load';
import type { RouteConfig } from '../../src/config/types';
import { findRoute, hostMatches, hostWithoutPort, rewritePath } from '../../src/router/route-table';
import { normalizeAuthority } from '../../src/proxy/authority';

const yaml = `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: exact,     match: { path: /exact },                                  directResponse: { status: 200 } }
      - { name: canary,    match: { prefix: /api, headers: { x-canary: "true" } },   directResponse: { status: 200 } }
      - { name: api-write, match: { prefix: /api, methods: [post, PUT] },            directResponse: { status: 200 } }
      - { name: api-host,  match: { prefix: /api, host: api.example.com },           directResponse: { status: 200 } }
      - { name: wildcard,  match: { prefix: /api, host: "*.example.com" },           directResponse: { status: 200 } }
      - { name: api,       match: { prefix: /api },                                  directResponse: { status: 200 } }
      - { name: versioned, match: { regex: "^/v[0-9]+/" },                           directResponse: { status: 200 } }
      - { name: rest,      match: { prefix: / },                                     directResponse: { status: 200 } }
`;

const loaded = parseConfigText(yaml, '/tmp/routes.yaml');
if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
const routes: readonly RouteConfig[] = loaded.config.listeners[0].routes;

function route(method: string, path: string, host = '', headers: Record<string, string> = {}): string | undefined {
  return findRoute(routes, { method, path, host, headers })?.name;
}

t.test('first match wins across path, prefix, regex, methods, headers and host', async (t) => {
  const table: Array<[string, string, string, Record<string, string>, string]> = [
    ['GET', '/exact', '', {}, 'exact'],
    ['GET', '/exact/more', '', {}, 'rest'],
    ['GET', '/api/users', '', { 'x-canary': 'true' }, 'canary'],
    ['GET', '/api/users', '', { 'x-canary': 'false' }, 'api'],
    ['POST', '/api/users', '', {}, 'api-write'],
    ['PUT', '/api/users', '', {}, 'api-write'],
    ['DELETE', '/api/users', '', {}, 'api'],
    ['GET', '/api/users', 'api.example.com', {}, 'api-host'],
    ['GET', '/api/users', 'www.example.com', {}, 'wildcard'],
    ['GET', '/api/users', 'a.b.example.com', {}, 'api'],
    ['GET', '/api/users', 'example.com', {}, 'api'],
    ['GET', '/v2/items', '', {}, 'versioned'],
    ['GET', '/vx/items', '', {}, 'rest'],
    ['GET', '/', '', {}, 'rest'],
  ];
  for (const [method, path, host, headers, expected] of table) {
    t.equal(route(method, path, host, headers), expected, `${method} ${host}${path} ${JSON.stringify(headers)} → ${expected}`);
  }
});

t.test('no route matches', async (t) => {
  const only = routes.filter((r) => r.name === 'exact');
  t.equal(findRoute(only, { method: 'GET', path: '/other', host: '', headers: {} }), undefined);
});

t.test('rewritePrefix', async (t) => {
  t.equal(rewritePath('/api', '/', '/api/users'), '/users');
  t.equal(rewritePath('/api', '/', '/api'), '/');
  t.equal(rewritePath('/api/', '/v2/', '/api/users'), '/v2/users');
  t.equal(rewritePath('/api', '/internal', '/api/users'), '/internal/users');
  t.equal(rewritePath('/api', '', '/api/users'), '/users');
});

t.test('hosts', async (t) => {
  t.equal(hostWithoutPort('Example.COM:8080'), 'example.com');
  t.equal(hostWithoutPort('[::1]:8080'), '[::1]');
  t.equal(hostWithoutPort(undefined), '');
  t.same(normalizeAuthority('Example.COM:8080'), { host: 'example.com', authority: 'example.com:8080' });
  t.same(normalizeAuthority('[::1]:8080'), { host: '[::1]', authority: '[::1]:8080' });
  t.same(normalizeAuthority('[::1]'), { host: '[::1]', authority: '[::1]' });
  t.same(normalizeAuthority('[::1]:'), { host: '[::1]', authority: '[::1]' });
  t.same(normalizeAuthority('[::1]:08080'), { host: '[::1]', authority: '[::1]:8080' });
  t.same(normalizeAuthority('example.com:65535'), { host: 'example.com', authority: 'example.com:65535' });
  t.same(normalizeAuthority('internal.example.com.'), { host: 'internal.example.com', authority: 'internal.example.com' });
  t.same(normalizeAuthority('Internal.Example.com.:0443'), { host: 'internal.example.com', authority: 'internal.example.com:443' });
  t.same(normalizeAuthority('example.com:'), { host: 'example.com', authority: 'example.com' });
  t.same(normalizeAuthority(''), { host: '', authority: '' });
  t.equal(normalizeAuthority('example.com..'), undefined, 'an empty label is not a host');
  t.equal(normalizeAuthority('.'), undefined);
  t.equal(normalizeAuthority('example.com:65536'), undefined, 'no such port');
  t.ok(hostMatches('*.example.com', 'a.example.com'));
  t.notOk(hostMatches('*.example.com', 'example.com'));
  t.notOk(hostMatches('*.example.com', 'a.b.example.com'));
});
