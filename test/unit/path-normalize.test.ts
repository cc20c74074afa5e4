import fc from 'fast-check';
import t from 'tap';
import { normalizePath, splitTarget } from '../../src/core/path';

const normalized = (path: string): string => {
  const result = normalizePath(path);
  if (!result.ok) throw new Error(`refused ${path}: ${result.reason}`);
  return result.path;
};

t.test('dot segments, merged slashes, decoded unreserved characters', async (t) => {
  const cases: Array<[string, string]> = [
    ['/', '/'],
    ['/a/b', '/a/b'],
    ['/public/../admin', '/admin'],
    ['/public/./../admin', '/admin'],
    ['/a/b/c/./../../g', '/a/g'],
    ['/..', '/'],
    ['/../admin', '/admin'],
    ['/../../../admin', '/admin'],
    ['/a/..', '/'],
    ['/a/b/..', '/a/'],
    ['/a/.', '/a/'],
    ['/a/', '/a/'],
    ['//admin', '/admin'],
    ['/public//..//admin', '/admin'],
    ['///a///b///', '/a/b/'],
    ['/public/%2e%2e/admin', '/admin'],
    ['/public/%2E%2e/admin', '/admin'],
    ['/public/.%2e/admin', '/admin'],
    ['/public/%2e/admin', '/public/admin'],
    ['/%61dmin', '/admin'],
    ['/%7Euser/%5F', '/~user/_'],
    ['/.well-known/x', '/.well-known/x'],
    ['/a/..b/c', '/a/..b/c'],
    ['/a/b..', '/a/b..'],
  ];
  for (const [input, expected] of cases) t.equal(normalized(input), expected, input);
});

t.test('an encoded slash or backslash stays encoded (one segment), hex upper-cased', async (t) => {
  t.equal(normalized('/public%2F..%2Fadmin'), '/public%2F..%2Fadmin');
  t.equal(normalized('/public%2f..%2fadmin'), '/public%2F..%2Fadmin');
  t.equal(normalized('/public/%2e%2e%2Fadmin'), '/public/..%2Fadmin', 'a segment that only starts with a decoded dot-dot is not a dot segment');
  t.equal(normalized('/a%5C..%5Cadmin'), '/a%5C..%5Cadmin');
  t.equal(normalized('/a%252e%252e/b'), '/a%252e%252e/b', 'double encoding is not decoded twice');
  t.equal(normalized('/caf%C3%A9'), '/caf%C3%A9');
});

t.test('refused: backslash, fragment, malformed escapes, invisible bytes, other forms', async (t) => {
  for (const input of ['/public\\..\\admin', '/a#b', '/a%', '/a%4', '/a%zz', '/a%g0', '/a b', '/a\u0000', '/caf\u00e9', '*', 'admin', '']) {
    const result = normalizePath(input);
    t.notOk(result.ok, JSON.stringify(input));
    if (!result.ok) t.type(result.reason, 'string');
  }
});

t.test('splitTarget keeps the query untouched', async (t) => {
  t.same(splitTarget('/a/../b?x=/../y&z=%2e'), { path: '/a/../b', query: '?x=/../y&z=%2e' });
  t.same(splitTarget('/a'), { path: '/a', query: '' });
});

// Paths built from the pieces path tricks are made of.
const trickyPath = fc
  .array(fc.constantFrom('a', 'admin', 'public', '.', '..', '%2e', '%2E%2e', '.%2e', '', '%2F', '%2f', '%41', '%7e', ';x', '..;', '%25', '.a', 'a.'), {
    minLength: 0,
    maxLength: 8,
  })
  .chain((segments) => fc.boolean().map((trailing) => '/' + segments.join('/') + (trailing ? '/' : '')));

t.test('properties', async (t) => {
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(trickyPath, (path) => {
        const out = normalized(path);
        // Idempotent: normalising twice changes nothing.
        if (normalized(out) !== out) return false;
        // No dot segment and no empty segment survives (but a trailing slash may).
        const segments = out.split('/').slice(1, out.endsWith('/') ? -1 : undefined);
        if (segments.some((s) => s === '' || s === '.' || s === '..')) return out === '/';
        // A WHATWG URL parser (what many apps use) reads the same path.
        return new URL(out, 'http://app.local').pathname === out;
      }),
      { numRuns: 2000 },
    ),
  );
});
