import t from 'tap';
import { EMBEDDED_SOURCE, parseConfigText } from '../../src/config/load';

function routeWith(match: string): string {
  return `listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: r
        match: { ${match} }
        directResponse: { status: 200 }
`;
}

t.test('route paths and prefixes must be written in normal form', async (t) => {
  const refused: Array<[string, RegExp]> = [
    ['prefix: /admin//secret', /write "\/admin\/secret"/],
    ['path: /public/../admin', /write "\/admin"/],
    ['prefix: /%61dmin', /write "\/admin"/],
    ['prefix: /a%2fb', /write "\/a%2Fb"/],
    ['path: /a/./b', /write "\/a\/b"/],
    ['prefix: "/a\\\\b"', /backslash/],
    ['prefix: /a%zz', /malformed percent-encoding/],
  ];
  for (const [match, message] of refused) {
    const result = parseConfigText(routeWith(match), EMBEDDED_SOURCE);
    t.notOk(result.ok, match);
    if (result.ok) continue;
    t.equal(result.errors.length, 1, `${match}: one error`);
    t.equal(result.errors[0].line, 6, `${match}: on its line`);
    t.match(result.errors[0].message, message, match);
  }
  for (const match of ['prefix: /', 'prefix: /api', 'prefix: /api/', 'path: /a%2Fb', 'prefix: /.well-known/', 'path: /~user']) {
    t.ok(parseConfigText(routeWith(match), EMBEDDED_SOURCE).ok, `${match} is accepted`);
  }
});
