import t from 'tap';
import { EMBEDDED_SOURCE, parseConfigText } from '../../src/config/load';
import { nestedRepetition } from '../../src/config/regex-safety';

t.test('nested repetitions are found', async (t) => {
  const nested: Array<[string, string]> = [
    ['^(a+)+$', '(a+)+'],
    ['^/(\\w*)*x', '(\\w*)*'],
    ['^/((ab)+c)*$', '((ab)+c)*'],
    ['^(a|b+){2,}$', '(a|b+){2,}'],
    ['(x+y?)+?', '(x+y?)+?'],
    ['([a-z]+/)+$', '([a-z]+/)+'],
    ['(?:a{2,})*', '(?:a{2,})*'],
    ['((a)+)+', '((a)+)+'],
    ['(a+){3}', '(a+){3}'],
  ];
  for (const [source, excerpt] of nested) t.equal(nestedRepetition(source), excerpt, source);
});

t.test('ordinary route regexes pass', async (t) => {
  for (const source of [
    '^/v[0-9]+/',
    '^/(api|v[0-9]+)/users/[0-9]+$',
    '^/files/.*\\.(png|jpe?g)$',
    '^/a(b)?c+$',
    '^/(a?)+$'.replace('+', '?'),
    '^/x[(]+[)]+$',
    '^/\\(a+\\)+$',
    '^/[a+]+$',
    '^/(ab){2}c+$',
    '^/[]]+',
  ]) {
    t.equal(nestedRepetition(source), undefined, source);
  }
});

t.test('the loader refuses a nested repetition with its path and line', async (t) => {
  const result = parseConfigText(
    `listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: evil
        match: { regex: "^/(a+)+$" }
        directResponse: { status: 200 }
`,
    EMBEDDED_SOURCE,
  );
  t.notOk(result.ok);
  if (result.ok) return;
  t.same(result.errors.map((e) => [e.path, e.line]), [['listeners[0].routes[0].match.regex', 6]]);
  t.match(result.errors[0].message, /repeats a group that repeats inside \(\(a\+\)\+\)/);
});
