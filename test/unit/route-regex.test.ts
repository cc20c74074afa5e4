/**
 * Route regexes run on RE2 (re2js): matching takes time linear in the path's length whatever
 * the pattern, so ambiguous patterns that V8 would backtrack on for hours are harmless; the
 * syntax that needs backtracking is refused at load with its path, line and the reason.
 */
import { deserialize, serialize } from 'node:v8';
import t from 'tap';
import { EMBEDDED_SOURCE, freezeSnapshot, parseConfigText } from '../../src/config/load';
import { compileRouteRegex, isRouteRegex } from '../../src/config/route-regex';
import type { SidecarConfig } from '../../src/config/types';
import { findRoute } from '../../src/router/route-table';

/** Each pattern made V8 take exponential time on `/` + n × `a` + `!` (28 characters: 4.7 s and 12.8 s for the first two). */
const AMBIGUOUS = ['^/(\\w|\\d)*$', '^/(a|a)*$', '^/(a+)+$', '^/(\\w*)*x$'];

/** Long enough that a backtracking engine would never finish (2^10000 paths). */
const EVIL_PATH = `/${'a'.repeat(10_000)}!`;

function routesYaml(patterns: readonly string[]): string {
  return [
    'listeners:',
    '  - name: main',
    '    address: 127.0.0.1:0',
    '    routes:',
    ...patterns.map((p, i) => `      - { name: r${i}, match: { regex: ${JSON.stringify(p)} }, directResponse: { status: 200 } }`),
    '      - { name: rest, match: { prefix: / }, directResponse: { status: 404 } }',
    '',
  ].join('\n');
}

function load(text: string): SidecarConfig {
  const result = parseConfigText(text, EMBEDDED_SOURCE);
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.config;
}

function routeName(config: SidecarConfig, path: string): string | undefined {
  return findRoute(config.listeners[0].routes, { method: 'GET', path, host: '', headers: {} })?.name;
}

t.test('ambiguous patterns load and match a 10 000-character crafted path correctly', async (t) => {
  for (const pattern of AMBIGUOUS) {
    const config = load(routesYaml([pattern]));
    t.equal(routeName(config, EVIL_PATH), 'rest', `${pattern}: the crafted path falls through`);
    t.equal(routeName(config, `/${'a'.repeat(10_000)}`), pattern === '^/(\\w*)*x$' ? 'rest' : 'r0', `${pattern}: a long matching path`);
  }
});

t.test('search semantics are those of RegExp#test (unanchored, flags off)', async (t) => {
  const patterns = [
    '^/v[0-9]+/',
    'v[0-9]+',
    '/users/[0-9]+$',
    '^/api$',
    '\\.(png|jpe?g)$',
    '^/(slow|huge|leave)',
    '^/a.c',
    '^/[\\w-]+/\\d{2,4}$',
    '\\bitems\\b',
    '^/ITEMS',
    '(?:x|y)+z',
    // Anchored at the start on every branch (searched anchored) or not (searched everywhere).
    '(^/api)',
    '(?:^/a|^/s)',
    '^/a|/b',
    '^/x$|items',
    '(?:^)?/users',
    '',
  ];
  const paths = ['/', '/b', '/x', '/x/b', '/v1/users', '/x/v22', '/users/12', '/users/12/x', '/api', '/api/', '/i.png', '/i.jpeg', '/slowly', '/a\nc', '/abc', '/my-id/2024', '/my id/2024', '/items', '/itemsx', '/items', '/xyz', '/é/v1/'];
  for (const pattern of patterns) {
    const native = new RegExp(pattern);
    const re2 = compileRouteRegex(pattern);
    for (const path of paths) t.equal(re2.test(path), native.test(path), `${JSON.stringify(pattern)} on ${JSON.stringify(path)}`);
  }
});

t.test('syntax RE2 leaves out is refused with its path, line and reason', async (t) => {
  const cases: ReadonlyArray<readonly [string, RegExp]> = [
    ['^/(a)\\1$', /^invalid regex "\^\/\(a\)\\\\1\$": backreferences \(`\\1`\) are not supported by RE2 \(route regexes use RE2 syntax, matched in linear time: https:\/\/github\.com\/google\/re2\/wiki\/Syntax\)$/],
    ['^/(?<id>a)\\k<id>$', /backreferences \(`\\k`\) are not supported by RE2/],
    ['^/(?=admin)', /^invalid regex "\^\/\(\?=admin\)": lookahead \(`\(\?=`\) is not supported by RE2 \(route regexes use RE2 syntax/],
    ['^/(?!admin)', /lookahead \(`\(\?!`\) is not supported by RE2/],
    ['(?<!x)/admin', /lookbehind \(`\(\?<!`\) is not supported by RE2/],
    ['^/\\u0041', /the `\\uXXXX` escape is written `\\x\{XXXX\}` in RE2/],
    ['^/v[0-9+/(', /^invalid regex "\^\/v\[0-9\+\/\(": missing closing \]: `\[0-9\+\/\(` \(route regexes use RE2 syntax/],
    ['^/a{1001}', /invalid repeat count: `\{1001\}`/],
  ];
  for (const [pattern, message] of cases) {
    const result = parseConfigText(routesYaml([pattern]), EMBEDDED_SOURCE);
    t.notOk(result.ok, pattern);
    if (result.ok) continue;
    t.same(
      result.errors.map((e) => [e.path, e.line]),
      [['listeners[0].routes[0].match.regex', 5]],
      `${pattern}: one error at the regex`,
    );
    t.match(result.errors[0].message, message, pattern);
  }
});

t.test('a snapshot that crossed to a worker (structured clone) matches with RE2 again', async (t) => {
  const config = load(routesYaml(['^/(a|a)*$', '^/v[0-9]+/']));
  // What node:cluster's `advanced` serialization does to the snapshot on its way to a worker.
  const received = freezeSnapshot(deserialize(serialize(config)) as SidecarConfig);
  const routes = received.listeners[0].routes;
  t.ok(routes.slice(0, 2).every((r) => isRouteRegex(r.match.regex)), 'compiled again');
  t.ok(Object.isFrozen(routes[0].match), 'frozen');
  t.equal(routeName(received, EVIL_PATH), 'rest');
  t.equal(routeName(received, '/aaaa'), 'r0');
  t.equal(routeName(received, '/v2/x'), 'r1');
  // The regex keeps matching after the freeze (its DFA cache is written as it matches).
  t.equal(routeName(received, '/v3/y'), 'r1');
});
