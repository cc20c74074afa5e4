/**
 * The admin API answers only requests addressed to it (DNS rebinding: a page whose name now
 * resolves to 127.0.0.1 sends its own name as Host) and only from its own origin (a
 * cross-site form POST to /reload); probes answer whatever they carry.
 */
import { hostname } from 'node:os';
import t from 'tap';
import { rawExchange } from '../helpers/raw';
import { parsePrometheusText } from '../helpers/prometheus';
import { startSidecar, type RunningSidecar } from '../helpers/sidecar';

const TOKEN = 'c0rrect-h0rse-battery-staple-0123456789';

function yaml(admin: string): string {
  return `admin: ${admin}
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - { name: ping, match: { path: /ping }, directResponse: { status: 200, body: pong } }
`;
}

interface Answer {
  readonly status: number | undefined;
  readonly error: string | undefined;
  readonly body: string;
}

async function ask(proxy: RunningSidecar, method: string, path: string, headers: Record<string, string>): Promise<Answer> {
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  const exchange = await rawExchange(proxy.sidecar.admin.port, `${method} ${path} HTTP/1.1\r\n${lines}content-length: 0\r\nconnection: close\r\n\r\n`);
  const head = exchange.text.split('\r\n\r\n')[0];
  return {
    status: exchange.statuses[0],
    error: /\r\nx-sidecar-error: *([A-Z_]+)/i.exec(head)?.[1],
    body: exchange.text.slice(head.length + 4),
  };
}

async function reloads(proxy: RunningSidecar): Promise<number> {
  return parsePrometheusText(await proxy.sidecar.metrics.registry.metrics()).sum('sidecar_config_reloads_total');
}

t.test('a Host that is not the admin is refused: 403 ADMIN_FORBIDDEN, nothing done', async (t) => {
  const proxy = await startSidecar(yaml('{ address: 127.0.0.1:0 }'));
  t.teardown(() => proxy.close());
  const port = proxy.sidecar.admin.port;
  const before = await reloads(proxy);
  for (const host of ['attacker.example', `attacker.example:${port}`, 'localhost.attacker.example', '127.0.0.1.nip.io', 'localhost.']) {
    for (const [method, path] of [['GET', '/config'], ['POST', '/reload'], ['GET', '/metrics'], ['GET', '/nonexistent']]) {
      const answer = await ask(proxy, method, path, { host });
      t.equal(answer.status, 403, `${method} ${path} with Host: ${host}`);
      t.equal(answer.error, 'ADMIN_FORBIDDEN', 'x-sidecar-error');
      t.match(JSON.parse(answer.body), { error: 'ADMIN_FORBIDDEN', message: /DNS rebinding/ }, 'a JSON error that says why');
      t.notMatch(answer.body, /listeners|sidecar_/, 'nothing leaks');
    }
  }
  t.equal(await reloads(proxy), before, 'no reload ran');
});

t.test('the admin own names and any IP address are answered, with or without a port', async (t) => {
  const proxy = await startSidecar(yaml('{ address: 127.0.0.1:0 }'));
  t.teardown(() => proxy.close());
  const port = proxy.sidecar.admin.port;
  const hosts = [
    `127.0.0.1:${port}`, '127.0.0.1', `localhost:${port}`, 'LOCALHOST', 'localhost:12345', 'app.localhost',
    `[::1]:${port}`, '[::1]', `10.1.2.3:${port}`, '192.168.0.7', hostname(),
  ];
  for (const host of hosts) {
    t.equal((await ask(proxy, 'GET', '/config', { host })).status, 200, `GET /config with Host: ${host}`);
  }
  // The reload runs (and is rejected: the inline test config has no file to read again).
  const reload = await ask(proxy, 'POST', '/reload', { host: `localhost:${port}` });
  t.equal(reload.status, 422, 'POST /reload with Host: localhost runs the reload');
  t.match(JSON.parse(reload.body), { result: 'rejected' });
});

t.test('a cross-site request is refused; the admin own origin is answered', async (t) => {
  const proxy = await startSidecar(yaml('{ address: 127.0.0.1:0 }'));
  t.teardown(() => proxy.close());
  const port = proxy.sidecar.admin.port;
  const host = `127.0.0.1:${port}`;
  const before = await reloads(proxy);
  const refused: Array<Record<string, string>> = [
    { origin: 'https://attacker.example' },
    { origin: 'null' },
    { origin: `http://localhost:${port}` }, // another origin than the Host the request was sent to
    { origin: 'http://127.0.0.1:3000' },
    { origin: `https://${host}` },
    { 'sec-fetch-site': 'cross-site' },
    { 'sec-fetch-site': 'same-site' },
  ];
  for (const headers of refused) {
    for (const [method, path] of [['POST', '/reload'], ['GET', '/config']]) {
      const answer = await ask(proxy, method, path, { host, ...headers });
      t.equal(answer.status, 403, `${method} ${path} with ${JSON.stringify(headers)}`);
      t.equal(answer.error, 'ADMIN_FORBIDDEN');
    }
  }
  t.equal(await reloads(proxy), before, 'no reload ran');
  const answered: Array<Record<string, string>> = [{ origin: `http://${host}` }, { origin: `HTTP://${host}`, 'sec-fetch-site': 'same-origin' }, { 'sec-fetch-site': 'none' }];
  for (const headers of answered) {
    // 422: the reload ran and was rejected (the inline test config has no file to read again).
    t.equal((await ask(proxy, 'POST', '/reload', { host, ...headers })).status, 422, `POST /reload with ${JSON.stringify(headers)} runs the reload`);
  }
  t.equal(await reloads(proxy), before + 3, 'three reloads ran');
});

t.test('probes answer whatever Host and Origin they carry; the token does not lift the checks', async (t) => {
  const proxy = await startSidecar(yaml(`{ address: 127.0.0.1:0, token: ${TOKEN} }`));
  t.teardown(() => proxy.close());
  for (const path of ['/ready', '/live']) {
    const answer = await ask(proxy, 'GET', path, { host: 'attacker.example', origin: 'https://attacker.example', 'sec-fetch-site': 'cross-site' });
    t.equal(answer.status, 200, `GET ${path} from anywhere`);
  }
  const withToken = await ask(proxy, 'GET', '/config', { host: 'attacker.example', authorization: `Bearer ${TOKEN}` });
  t.equal(withToken.status, 403, 'a foreign Host is refused even with the token');
  const noToken = await ask(proxy, 'GET', '/config', { host: 'localhost' });
  t.equal(noToken.status, 401, 'a good Host still needs the token');
});
