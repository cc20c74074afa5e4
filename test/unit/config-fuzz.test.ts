/**
 * The loader never throws and never fails "internally", whatever the text: every input
 * gives a snapshot or errors that point inside the file.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { stringify } from 'yaml';
import { EMBEDDED_SOURCE, type LoadResult, parseConfigText } from '../../src/config/load';

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
