/**
 * Regular-expression denial of service over real sockets. Routes with ambiguous regexes
 * (`^/(\w|\d)*$`, `^/(a|a)*$`) that a backtracking engine takes exponential time on: one
 * request for `/` + 28 × `a` + `!` stalled every request of the process for seconds (4.7 s and
 * 12.8 s), and a few more characters for hours. With RE2 the crafted requests and the normal
 * request sent beside them are all answered, by the route each path belongs to, in one
 * process and across worker processes (where the compiled regexes are rebuilt).
 */
import t from 'tap';
import { rawExchange } from '../helpers/raw';
import { startSidecar } from '../helpers/sidecar';
import { fetchOnce, startGroup } from '../helpers/worker-group';

const ROUTES = `
    routes:
      - { name: letters, match: { regex: "^/(a|a)*$" }, directResponse: { status: 200, body: letters } }
      - { name: words, match: { regex: "^/(\\\\w|\\\\d)*$" }, directResponse: { status: 200, body: words } }
      - { name: rest, match: { prefix: / }, directResponse: { status: 404, body: rest } }
`;

const CONFIG = `admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0${ROUTES}`;

/** Crafted paths: neither regex matches (the `!`), so a backtracking engine tries every split of the a's. */
const CRAFTED = [28, 5_000, 10_000].map((n) => `/${'a'.repeat(n)}!`);

/** Each path with the route that must answer it. */
const EXPECTED: ReadonlyArray<readonly [string, number, string]> = [
  ...CRAFTED.map((path) => [path, 404, 'rest'] as const),
  ['/aaaa', 200, 'letters'],
  ['/ab12_', 200, 'words'],
  [`/${'a'.repeat(10_000)}`, 200, 'letters'],
];

function get(path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n`;
}

function bodyOf(text: string): string {
  return text.slice(text.indexOf('\r\n\r\n') + 4);
}

t.test('one process: crafted paths and a request beside them are answered by their routes', async (t) => {
  const proxy = await startSidecar(CONFIG);
  t.teardown(() => proxy.close());
  // All at once: with a backtracking engine the first crafted path holds the event loop and
  // nothing is answered.
  const answers = await Promise.all(EXPECTED.map(([path]) => rawExchange(proxy.port(), get(path))));
  EXPECTED.forEach(([path, status, body], i) => {
    const name = `${path.slice(0, 12)}… (${path.length} characters)`;
    t.same(answers[i].statuses, [status], `${name}: status`);
    t.equal(bodyOf(answers[i].text), body, `${name}: route`);
    t.equal(answers[i].closedBy, 'server', `${name}: answered, not cut by the test's bound`);
  });
  // And the process still serves after them.
  const after = await rawExchange(proxy.port(), get('/aa'));
  t.same(after.statuses, [200]);
  t.equal(bodyOf(after.text), 'letters');
});

t.test('workers: 2: the regexes compiled again in each worker match the same way', async (t) => {
  const group = await startGroup(t, `admin: { address: 127.0.0.1:0 }\nworkers: 2\nlisteners:\n  - name: main\n    address: 127.0.0.1:0${ROUTES}`);
  const base = `http://127.0.0.1:${group.listenerPort}`;
  // Several rounds so that both workers (connections are spread over them) answer each kind.
  for (let round = 0; round < 3; round++) {
    const answers = await Promise.all(EXPECTED.map(([path]) => fetchOnce(base + path)));
    EXPECTED.forEach(([path, status, body], i) => {
      t.same(answers[i], { status, body }, `round ${round}: ${path.slice(0, 12)}… (${path.length} characters)`);
    });
  }
});
