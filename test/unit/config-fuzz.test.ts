/**
 * The loader never throws and never fails "internally", whatever the text: every input
 * gives a snapshot or errors that point inside the file.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { stringify } from 'yaml';
import { configJsonSchema } from '../../src/config/json-schema';
import { EMBEDDED_SOURCE, type LoadResult, loadConfigFile, parseConfigText } from '../../src/config/load';
import { CLUSTER_ONLY_ROUTE_KEYS } from '../../src/config/schema';

const FULL = readFileSync(path.resolve(__dirname, '../fixtures/config/full.yaml'), 'utf8');

function wellBehaved(text: string, result: LoadResult): boolean {
  if (result.ok) return true;
  const lines = text.split(/\r\n|\r|\n/).length;
  return (
    result.errors.length > 0 &&
    result.errors.every(
      (e) =>
        typeof e.message === 'string' &&
        e.message.length > 0 &&
        !e.message.startsWith('internal error') &&
        (e.line === undefined || (Number.isInteger(e.line) && e.line >= 1 && e.line <= lines + 1)),
    )
  );
}

const check = (text: string): boolean => wellBehaved(text, parseConfigText(text, EMBEDDED_SOURCE));

t.test('arbitrary text', async (t) => {
  t.doesNotThrow(() => fc.assert(fc.property(fc.string({ maxLength: 400 }), check), { numRuns: 200 }));
  t.doesNotThrow(() => fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), check), { numRuns: 100 }));
});

t.test('mutations of a valid file', async (t) => {
  const lines = FULL.split('\n');
  const mutation = fc.oneof(
    // delete a slice of characters
    fc.tuple(fc.nat(FULL.length - 1), fc.integer({ min: 1, max: 20 })).map(([at, n]) => FULL.slice(0, at) + FULL.slice(at + n)),
    // insert YAML-significant characters
    fc
      .tuple(fc.nat(FULL.length), fc.constantFrom(':', '-', ' ', '\t', '[', '{', '}', '"', "'", '&a', '*a', '!!', '#', '\n', '? ', '<<: '))
      .map(([at, s]) => FULL.slice(0, at) + s + FULL.slice(at)),
    // duplicate or drop a line
    fc.nat(lines.length - 1).map((i) => [...lines.slice(0, i + 1), lines[i], ...lines.slice(i + 1)].join('\n')),
    fc.nat(lines.length - 1).map((i) => [...lines.slice(0, i), ...lines.slice(i + 1)].join('\n')),
    // replace one scalar value with something of another type
    fc
      .tuple(fc.nat(lines.length - 1), fc.constantFrom('~', '[]', '{}', '-1', '1e400', '0x10', 'true', '""', '5 parsecs', '!!binary aGk='))
      .map(([i, v]) => [...lines.slice(0, i), lines[i].replace(/:\s*[^#{[]+/, `: ${v}`), ...lines.slice(i + 1)].join('\n')),
  );
  t.doesNotThrow(() => fc.assert(fc.property(mutation, check), { numRuns: 300 }));
});

t.test('arbitrary data written as YAML', async (t) => {
  const data = fc.oneof(
    fc.anything({ maxDepth: 4 }),
    fc.record({
      listeners: fc.array(fc.dictionary(fc.constantFrom('name', 'address', 'routes', 'tls', 'x'), fc.anything({ maxDepth: 3 }))),
      clusters: fc.anything({ maxDepth: 3 }),
    }),
  );
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(data, (value) => {
        let text: unknown;
        try {
          text = stringify(value);
        } catch {
          return true;
        }
        // stringify(undefined) is undefined: not text, but the loader must still answer.
        if (typeof text !== 'string') return !parseConfigText(text as string, EMBEDDED_SOURCE).ok;
        return check(text);
      }),
      { numRuns: 200 },
    ),
  );
});

t.test('pathological inputs', async (t) => {
  const inputs = [
    '['.repeat(20_000),
    '{a: '.repeat(3_000) + '1' + '}'.repeat(3_000),
    'a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c]\n',
    `listeners:\n${'  - name: x\n'.repeat(5_000)}`,
    '__proto__: { polluted: true }\nconstructor: 1\n',
    '? [a]\n: b\n',
    '\uFEFFlisteners: []\n',
    '---\na: 1\n---\nb: 2\n',
  ];
  for (const input of inputs) t.ok(check(input), JSON.stringify(input.slice(0, 40)));
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
});

// ---------------------------------------------------------------------------------------
// Documents shaped like the schema: every field of the contract, mostly plausible values,
// sometimes a wrong one. Generated from the JSON Schema, so new fields are fuzzed as they come.
// ---------------------------------------------------------------------------------------

type SchemaNode = { readonly [key: string]: unknown };

/** Valid and invalid values for string fields, by field name. */
const STRING_POOLS: ReadonlyArray<readonly [RegExp, readonly string[], readonly string[]]> = [
  [/^address$/, ['127.0.0.1:0', '[::1]:0', 'localhost:0'], ['0.0.0.0:8080', '127.0.0.1:99999', 'nohost', '[::]:0', ':80']],
  [/timeout|delay|interval|window|base$|^max$|ejection|perTry/i, ['250ms', '5s', '1m', '10s'], ['0s', '-1s', '1.5s', '5 parsecs', '1e3ms', '10h', '']],
  [/bytes/i, ['64KiB', '10MiB', '1GiB'], ['0', '1.5KiB', '-1KiB', 'lots']],
  [/^url$/, ['http://127.0.0.1:3000', 'http://[::1]:8080', 'http://localhost:3001'], ['https://x:1', 'ftp://x', 'http://x:1/path', 'http://127.0.0.1']],
  [/^(path|prefix|rewritePrefix)$/, ['/', '/api', '/api/', '/healthz'], ['/a/../b', '//x', '/%2e', 'nope', '/a b', '/%zz']],
  [/^regex$/, ['^/v[0-9]+/', '.*', '^/(x|y)$', '^/(\\w|\\d)*$'], ['(', '^/(a)\\1$', '^/(?=x)', '[', '\\']],
  [/^(name|cluster)$/, ['app', 'main', 'api'], ['Bad Name', '', 'a'.repeat(120)]],
  [/^serviceName$/, ['orders'], ['']],
  [/^(cert|key|clientCa)$/, ['a.crt', '../x.key'], ['']],
  [/^hostRewrite$/, ['auto', 'api.internal'], ['*', 'a..b', 'http://x']],
  [/^host$|serverNames/, ['api.example.com', '*.example.com'], ['*', 'a..b', '[::1']],
  [/trustedProxies/, ['10.0.0.0/8', '::1/128', '::ffff:10.0.0.0/104'], ['10.0.0.0/33', 'x']],
  [/token/, ['s3cret-token-0123456789'], ['']],
  [/endpoint/, ['http://127.0.0.1:4318'], ['nope']],
];

type Mode = 'valid' | 'mixed';

function stringArbitrary(node: SchemaNode, key: string, mode: Mode): fc.Arbitrary<string> {
  const pool = STRING_POOLS.find(([pattern]) => pattern.test(key));
  const examples = Array.isArray(node.examples) ? (node.examples as string[]) : [];
  const valid = [...(pool?.[1] ?? []), ...examples];
  if (mode === 'valid' && valid.length > 0) return fc.constantFrom(...valid);
  const known = [...valid, ...(pool?.[2] ?? [])];
  return known.length > 0
    ? fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...known) }, { weight: 1, arbitrary: fc.string({ maxLength: 12 }) })
    : fc.string({ maxLength: 12 });
}

const WRONG_VALUE = fc.oneof(
  fc.constant(null),
  fc.integer({ min: -3, max: 100_000 }),
  fc.double(),
  fc.string({ maxLength: 8 }),
  fc.boolean(),
  fc.constant([]),
  fc.constant({}),
);

/**
 * In `valid` mode only values the schema allows are drawn (cross-field rules may still
 * fail: unknown clusters, duplicate names, two matchers); `mixed` adds wrong types, values
 * out of range, missing required fields and unknown keys.
 */
function shaped(node: SchemaNode, key: string, depth: number, mode: Mode): fc.Arbitrary<unknown> {
  const alternatives = (node.anyOf ?? (node.type === undefined ? node.oneOf : undefined)) as SchemaNode[] | undefined;
  if (alternatives !== undefined) return fc.oneof(...alternatives.map((alt) => schemaShaped(alt, key, depth, mode)));
  if (Array.isArray(node.enum)) return fc.constantFrom(...(node.enum as unknown[]));
  if ('const' in node) return fc.constant(node.const);
  switch (node.type) {
    case 'object': {
      if (depth > 6) return fc.constant({});
      const properties = (node.properties ?? {}) as Record<string, SchemaNode>;
      const required = new Set((node.required ?? []) as string[]);
      const dropRequired = mode === 'valid' ? 0 : 1;
      const entries = Object.entries(properties).map(([name, child]) =>
        required.has(name)
          ? fc.oneof(
              { weight: 19, arbitrary: schemaShaped(child, name, depth + 1, mode).map((v) => [[name, v]]) },
              { weight: dropRequired, arbitrary: fc.constant([]) },
            )
          : fc.oneof(
              { weight: 3, arbitrary: fc.constant([]) },
              { weight: 1, arbitrary: schemaShaped(child, name, depth + 1, mode).map((v) => [[name, v]]) },
            ),
      );
      const additional = node.additionalProperties;
      const extra =
        typeof additional === 'object' && additional !== null
          ? fc.dictionary(fc.constantFrom('x-canary', 'x-debug', 'content-type'), schemaShaped(additional as SchemaNode, key, depth + 1, mode), { maxKeys: 2 })
          : mode === 'valid'
            ? fc.constant({})
            : fc.oneof({ weight: 15, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: fc.record({ unexpectedKey: fc.anything({ maxDepth: 1 }) }) });
      const object = fc.tuple(fc.tuple(...entries), extra).map(([pairs, more]) => ({ ...Object.fromEntries(pairs.flat()), ...(more as object) }) as Record<string, unknown>);
      // `oneOf: [{ required: [a] }, { required: [b] }]` marks exclusive keys: valid documents set exactly one.
      const exclusive = Array.isArray(node.oneOf) ? (node.oneOf as SchemaNode[]).flatMap((alt) => (alt.required ?? []) as string[]) : [];
      if (mode !== 'valid' || exclusive.length === 0) return object;
      return fc.tuple(object, fc.constantFrom(...exclusive)).chain(([value, chosen]) => {
        const rest = Object.fromEntries(Object.entries(value).filter(([k]) => !exclusive.includes(k)));
        return (value[chosen] !== undefined ? fc.constant(value[chosen]) : schemaShaped(properties[chosen], chosen, depth + 1, mode)).map((v) => ({ ...rest, [chosen]: v }));
      });
    }
    case 'array':
      return fc.array(schemaShaped((node.items ?? {}) as SchemaNode, key, depth + 1, mode), {
        minLength: mode === 'valid' ? Number(node.minItems ?? 0) : 0,
        maxLength: Math.max(Number(node.minItems ?? 0), depth === 0 ? 3 : 2),
      });
    case 'string':
      return stringArbitrary(node, key, mode);
    case 'integer': {
      const min = Number(node.minimum ?? 0);
      const max = Math.min(2 ** 31, Number(node.maximum ?? 5_000));
      return mode === 'valid' ? fc.integer({ min, max }) : fc.integer({ min: min - 1, max: max + 1 });
    }
    case 'number': {
      const min = Number(node.minimum ?? 0);
      const max = Number(node.maximum ?? 10);
      return mode === 'valid'
        ? fc.double({ min, max, noNaN: true })
        : fc.oneof(fc.double({ min: min - 1, max: max + 1, noNaN: true }), fc.constant(Number.NaN));
    }
    case 'boolean':
      return fc.boolean();
    default:
      return mode === 'valid' ? fc.constant('x') : fc.anything({ maxDepth: 1 });
  }
}

function schemaShaped(node: SchemaNode, key: string, depth: number, mode: Mode): fc.Arbitrary<unknown> {
  if (mode === 'valid') return shaped(node, key, depth, mode);
  return fc.oneof({ weight: 24, arbitrary: shaped(node, key, depth, mode) }, { weight: 1, arbitrary: WRONG_VALUE });
}

type Loose = Record<string, unknown>;
const isLoose = (value: unknown): value is Loose => typeof value === 'object' && value !== null && !Array.isArray(value);
const looseItems = (value: unknown): Loose[] => (Array.isArray(value) ? value.filter(isLoose) : []);

/** Names made unique the way a writer would: a suffix on the second "app". */
function uniqueNames(items: Loose[]): void {
  const seen = new Set<unknown>();
  items.forEach((item, i) => {
    if (seen.has(item.name)) item.name = `${String(item.name)}-${i}`;
    seen.add(item.name);
  });
}

/**
 * Valid mode draws each field from what the schema allows, but the rules between fields
 * (a route names a defined cluster, hashOn needs weightedClusters, rewritePrefix needs a prefix
 * match, cluster-only keys on directResponse routes, perTryTimeout within the route timeout)
 * would refuse nearly every document as the contract grows. This mends them as a writer
 * would, so valid documents reach the compiler; mixed mode keeps them broken.
 */
const ROUTE_ACTIONS = ['cluster', 'directResponse', 'redirect', 'weightedClusters'] as const;

function mendCrossFieldRules(document: unknown): unknown {
  if (!isLoose(document)) return document;
  if (looseItems(document.clusters).length === 0) document.clusters = [{ name: 'app', endpoints: [{ url: 'http://127.0.0.1:3000' }] }];
  const clusters = looseItems(document.clusters);
  uniqueNames(clusters);
  const names = clusters.map((c) => c.name).filter((n): n is string => typeof n === 'string');
  const listeners = looseItems(document.listeners);
  uniqueNames(listeners);
  for (const listener of listeners) {
    const routes = looseItems(listener.routes);
    uniqueNames(routes);
    for (const route of routes) {
      const actions = ROUTE_ACTIONS.filter((key) => route[key] !== undefined);
      for (const extra of actions.slice(1)) delete route[extra];
      if (actions.length === 0) route.cluster = names[0];
      if (names.length > 0 && typeof route.cluster === 'string' && !names.includes(route.cluster)) route.cluster = names[0];
      if (Array.isArray(route.weightedClusters)) {
        const entries = looseItems(route.weightedClusters).slice(0, names.length);
        entries.forEach((entry, i) => {
          entry.cluster = names[i];
        });
        if (entries.length > 0 && entries.every((e) => e.weight === 0)) entries[0].weight = 1;
        route.weightedClusters = entries;
        if (entries.length === 0) delete route.weightedClusters;
      }
      if (route.weightedClusters === undefined) delete route.hashOn;
      const own = typeof route.cluster === 'string' ? [route.cluster] : looseItems(route.weightedClusters).map((e) => e.cluster);
      if (isLoose(route.mirror)) {
        const other = names.find((n) => !own.includes(n));
        if (other === undefined) delete route.mirror;
        else route.mirror.cluster = other;
      }
      if (route.cluster === undefined && route.weightedClusters === undefined) for (const key of CLUSTER_ONLY_ROUTE_KEYS) delete route[key];
      const prefixMatch = isLoose(route.match) && route.match.prefix !== undefined;
      if (!prefixMatch) delete route.rewritePrefix;
      if (!prefixMatch && isLoose(route.redirect)) delete route.redirect.prefixRewrite;
      if (isLoose(route.retry) && route.retry.perTryTimeout !== undefined) route.retry.perTryTimeout = '250ms';
    }
  }
  return document;
}

/** Generous: a parse of a few KiB takes milliseconds; only a hang (or a regex blow-up) gets near it. */
const PARSE_BOUND_MS = 5_000;

for (const mode of ['valid', 'mixed'] as const) {
  t.test(`documents shaped like the schema (${mode} values)`, async (t) => {
    const shapedDocuments = shaped(configJsonSchema() as SchemaNode, '', 0, mode);
    const documents = mode === 'valid' ? shapedDocuments.map(mendCrossFieldRules) : shapedDocuments;
    let accepted = 0;
    let refused = 0;
    let slowest = 0;
    const messages = new Map<string, number>();
    t.doesNotThrow(() =>
      fc.assert(
        fc.property(documents, (document) => {
          const text = stringify(document);
          const started = performance.now();
          const result = parseConfigText(text, EMBEDDED_SOURCE);
          slowest = Math.max(slowest, performance.now() - started);
          if (result.ok) accepted++;
          else {
            refused++;
            for (const e of result.errors) messages.set(e.message.slice(0, 40), (messages.get(e.message.slice(0, 40)) ?? 0) + 1);
          }
          return wellBehaved(text, result) && (!result.ok || Object.isFrozen(result.config.listeners[0]));
        }),
        { numRuns: 300 },
      ),
    );
    t.ok(slowest < PARSE_BOUND_MS, `slowest parse ${slowest.toFixed(1)} ms`);
    if (mode === 'valid') t.ok(accepted > 0, `${accepted} documents accepted and compiled`);
    t.ok(refused > 0, `${refused} documents refused`);
    t.comment(`${accepted} accepted, ${refused} refused, slowest ${slowest.toFixed(1)} ms`);
    t.comment(JSON.stringify([...messages].sort((a, b) => b[1] - a[1]).slice(0, 8)));
  });
}

t.test('random bytes in a file: the file loader answers with errors, never throws', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-fuzz-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sidecar.yaml');
  const inputs = [Buffer.from([0xff, 0xfe, 0x00, 0x6c]), Buffer.from('listeners: [\u0000]'), Buffer.from([0xef, 0xbb, 0xbf]), Buffer.alloc(0), randomBytes(512)];
  for (const bytes of inputs) {
    writeFileSync(file, bytes);
    const result = await loadConfigFile(file);
    t.notOk(result.ok, `${bytes.length} bytes: refused`);
    if (!result.ok) t.ok(result.errors.every((e) => e.message.length > 0 && !e.message.startsWith('internal error')), 'with a real error');
  }
  const missing = await loadConfigFile(path.join(dir, 'missing.yaml'));
  t.notOk(missing.ok, 'a missing file is an error, not an exception');
  const folder = await loadConfigFile(dir);
  t.notOk(folder.ok, 'a folder is an error, not an exception');
});
