/**
 * Every invalid fixture with the exact errors it must produce: path, line and message.
 * The list of errors per file is complete: an extra or a missing error fails the test.
 */
import * as path from 'node:path';
import t from 'tap';
import { type ConfigError, loadConfigFile } from '../../src/config/load';

const INVALID = path.resolve(__dirname, '../fixtures/config/invalid');

interface Expected {
  readonly path: string;
  readonly line: number;
  readonly message: RegExp;
}

const CASES: Readonly<Record<string, readonly Expected[]>> = {
  'yaml-syntax.yaml': [{ path: 'listeners[0].routes[0].cluster[0]', line: 8, message: /^YAML: Flow sequence/ }],
  'bad-indent-key.yaml': [
    {
      path: 'listeners[0].routes[0]',
      line: 11,
      message: /^"directResponse" at column 7 is level with no key above it \(YAML nests by indentation alone\): write it at column 5, level with "routes:", or at column 9, level with "match:"$/,
    },
  ],
  'bad-indent-deeper-key.yaml': [
    { path: 'listeners[0].routes[0].name', line: 8, message: /^"match" at column 11 is deeper than "name:" above it, whose value is on its line \(YAML nests by indentation alone\): write it at column 9, level with "name:"$/ },
  ],
  'bad-indent-top-key.yaml': [
    { path: 'clusters', line: 6, message: /^"clusters" at column 2 is level with no key above it \(YAML nests by indentation alone\): write it at column 1, level with "listeners:", or at column 5, level with "routes:"$/ },
  ],
  'unknown-key-top.yaml': [{ path: 'tracin', line: 12, message: /^unknown key "tracin" \(did you mean "tracing"\?\)$/ }],
  'unknown-key-nested.yaml': [{ path: 'listeners[0].routes[0].retyr', line: 8, message: /^unknown key "retyr" \(did you mean "retry"\?\)$/ }],
  'misplaced-key-deeper.yaml': [
    {
      path: 'listeners[0].retry',
      line: 8,
      message: /^unknown key "retry" in listeners\[0\]: it is a key of each entry of listeners\[0\]\.routes; indent it under an entry \("- \.\.\."\) of "routes:"$/,
    },
  ],
  'misplaced-key-shallower.yaml': [
    { path: 'clusters[0].tracing', line: 9, message: /^unknown key "tracing" in clusters\[0\]: it is a key of the top level; indent it less, level with "clusters:"$/ },
  ],
  'bad-duration.yaml': [
    {
      path: 'listeners[0].routes[0].timeout',
      line: 8,
      message: /^invalid duration "5 parsecs": use a number with ms, s, m or h/,
    },
  ],
  'bad-size.yaml': [{ path: 'listeners[0].routes[0].maxRequestBodyBytes', line: 8, message: /^invalid size "10 megs"/ }],
  'unknown-cluster.yaml': [{ path: 'listeners[0].routes[0].cluster', line: 7, message: /^unknown cluster "ap"; defined clusters: app$/ }],
  'bad-regex.yaml': [
    { path: 'listeners[0].routes[0].match.regex', line: 7, message: /^invalid regex "\^\/v\[0-9\+\/\(": missing closing \]: `\[0-9\+\/\(` \(route regexes use RE2 syntax/ },
  ],
  'duplicate-route-names.yaml': [
    { path: 'listeners[0].routes[1].name', line: 8, message: /^duplicate route name "api": already used by listeners\[0\]\.routes\[0\] \(line 5\)$/ },
  ],
  'duplicate-cluster-names.yaml': [
    { path: 'clusters[1].name', line: 12, message: /^duplicate cluster name "app": already used by clusters\[0\] \(line 9\)$/ },
  ],
  'cluster-and-direct-response.yaml': [
    { path: 'listeners[0].routes[0].directResponse', line: 8, message: /exactly one of `cluster`, `directResponse`, `redirect`, `weightedClusters`; both/ },
  ],
  'no-action.yaml': [{ path: 'listeners[0].routes[0]', line: 5, message: /exactly one of `cluster`, `directResponse`, `redirect`, `weightedClusters`; none is set/ }],
  'two-matchers.yaml': [{ path: 'listeners[0].routes[0].match.prefix', line: 7, message: /^match needs exactly one of `path`, `prefix`, `regex`; both/ }],
  'bad-address.yaml': [{ path: 'listeners[0].address', line: 3, message: /^invalid address "0\.0\.0\.0:99999": the port must be 0\.\.65535$/ }],
  'bad-endpoint-url.yaml': [{ path: 'clusters[0].endpoints[1].url', line: 12, message: /use http:\/\/host:port or https:\/\/host:port/ }],
  'bad-retry-on.yaml': [
    { path: 'listeners[0].routes[0].retry.on[1]', line: 10, message: /^invalid value "timeouts": expected one of 5xx, gateway-error, .*retriable-4xx/ },
  ],
  'duplicate-yaml-key.yaml': [{ path: 'listeners[0].routes[0].timeout', line: 9, message: /^duplicate key "timeout"/ }],
  'rewrite-without-prefix.yaml': [{ path: 'listeners[0].routes[0].rewritePrefix', line: 8, message: /needs a `prefix` match/ }],
  'per-try-exceeds-timeout.yaml': [
    { path: 'listeners[0].routes[0].retry.perTryTimeout', line: 10, message: /^perTryTimeout \(3s\) exceeds the route timeout \(2s\)/ },
    { path: 'listeners[0].routes[0].retry.backoff.base', line: 11, message: /^backoff base \(1s\) must not exceed max \(100ms\)$/ },
  ],
  'status-codes-without-condition.yaml': [
    { path: 'listeners[0].routes[0].retry.statusCodes', line: 10, message: /only used with `retriable-status-codes`/ },
  ],
  'empty-endpoints.yaml': [{ path: 'clusters[0].endpoints', line: 10, message: /^a cluster needs at least one endpoint$/ }],
  'address-clashes.yaml': [
    { path: 'admin.address', line: 2, message: /^admin address 127\.0\.0\.1:8080 conflicts with listeners\[0\]\.address \(line 5\)$/ },
    { path: 'listeners[1].name', line: 10, message: /^duplicate listener name "main"/ },
    { path: 'listeners[1].address', line: 11, message: /^address 0\.0\.0\.0:8080 conflicts with listeners\[0\]\.address \(line 5\)$/ },
  ],
  'wrong-types.yaml': [
    { path: 'listeners[0].trustedProxies[0]', line: 4, message: /^invalid CIDR block "10\.0\.0\.0\/33"/ },
    { path: 'listeners[0].routes[0].match.headers.x-canary', line: 9, message: /^header values are strings: quote it \("true"\)$/ },
    { path: 'listeners[0].routes[0].retry.attempts', line: 11, message: /^expected a whole number, got the number 2\.5$/ },
    { path: 'clusters[0].endpoints[0].url', line: 15, message: /^invalid endpoint URL .*no path/ },
    { path: 'workers', line: 16, message: /^invalid workers "many"/ },
  ],
  'missing-required.yaml': [
    { path: 'listeners[0].name', line: 2, message: /^required field is missing$/ },
    { path: 'clusters[0].endpoints', line: 8, message: /^required field is missing$/ },
  ],
  // Three unrelated mistakes in one file: one run reports all three.
  'three-errors.yaml': [
    { path: 'listeners[0].routes[0].cluster', line: 8, message: /^unknown cluster "backend"/ },
    { path: 'listeners[0].routes[0].timeout', line: 9, message: /^invalid duration "5 parsecs"/ },
    { path: 'listeners[0].routes[1].retry.perTryTimout', line: 15, message: /^unknown key "perTryTimout" \(did you mean "perTryTimeout"\?\)$/ },
  ],
  'protocols.yaml': [
    { path: 'listeners[0].protocols', line: 4, message: /^protocols lists a protocol twice$/ },
    { path: 'listeners[1].protocols', line: 10, message: /^h2c is HTTP\/2 without TLS; a tls listener already offers HTTP\/2 by ALPN/ },
    { path: 'listeners[2].protocols', line: 15, message: /^protocols needs at least one of http1, h2c$/ },
    { path: 'clusters[0].protocol', line: 20, message: /http1.*http2/ },
  ],
};

const summary = (errors: readonly ConfigError[]): string[] => errors.map((e) => `${e.line} ${e.path}: ${e.message}`);

for (const [file, expected] of Object.entries(CASES)) {
  t.test(file, async (t) => {
    const result = await loadConfigFile(path.join(INVALID, file));
    t.equal(result.ok, false, 'rejected');
    if (result.ok) return;
    t.same(
      result.errors.map((e) => ({ path: e.path, line: e.line })),
      expected.map((e) => ({ path: e.path, line: e.line })),
      `paths and lines\n${summary(result.errors).join('\n')}`,
    );
    expected.forEach((e, i) => t.match(result.errors[i]?.message ?? '', e.message, e.path));
    for (const e of result.errors) t.type(e.column, 'number', `${e.path} has a column`);
  });
}

t.test('every fixture in invalid/ has expectations', async (t) => {
  const { readdirSync } = await import('node:fs');
  const files = readdirSync(INVALID).filter((f) => f.endsWith('.yaml')).sort();
  t.same(files, Object.keys(CASES).sort());
  t.ok(files.length >= 12);
});
