/**
 * Every line the process writes to stderr is JSON, process warnings included: http-proxy
 * (behind src/proxy/websocket.ts) calls `util._extend`, a runtime deprecation (DEP0060)
 * on Node 22+ that Node's own printer would write raw into the log. The built CLI runs a
 * WebSocket route under Node 24 when this machine has one (SIDECAR_TEST_NODE24, default the
 * CI's /tmp/n24 copy), else under this Node with --pending-deprecation, which emits DEP0060 too.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { CLI_PATH } from '../helpers/child-sidecar';
import { openWs, startWsEchoApp } from '../helpers/websocket';

const NODE24 = process.env.SIDECAR_TEST_NODE24 ?? '/tmp/n24/node_modules/node/bin/node';
const NODE = Number(process.versions.node.split('.')[0]) >= 22 || !existsSync(NODE24) ? process.execPath : NODE24;

t.test('a process warning (DEP0060 from http-proxy on a WebSocket upgrade) is a JSON log line', async (t) => {
  const app = await startWsEchoApp();
  t.teardown(() => app.close());
  const dir = t.testdir({});
  const config = path.join(dir, 'sidecar.yaml');
  writeFileSync(
    config,
    `admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: all
        match: { prefix: / }
        cluster: app
        websocket: { idleTimeout: 1m }
clusters:
  - name: app
    endpoints: [{ url: "${app.upstream.url}" }]
accessLog: { path: off }
drain: { delay: 0s, timeout: 5s }
`,
  );
  const child = spawn(NODE, ['--pending-deprecation', CLI_PATH, 'run', '-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines: string[] = [];
  const exited = once(child, 'exit');
  const ready = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      lines.push(line);
      if (line.includes('"sidecar ready"')) resolve((JSON.parse(line) as { listeners: string[] }).listeners[0].split('@')[1]);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code} before ready:\n${lines.join('\n')}`)));
  });
  const address = await ready;
  const ws = await openWs(`ws://${address}/chat`);
  ws.send('hello');
  const [echo] = (await once(ws, 'message')) as [Buffer];
  t.equal(String(echo), 'hello', 'the tunnel works');
  ws.close();
  await once(ws, 'close');
  child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  t.equal(code, 0, 'a clean exit');

  t.ok(lines.length >= 2, `${lines.length} lines on stderr (${NODE === process.execPath ? `node ${process.version}` : NODE})`);
  for (const line of lines) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      parsed = undefined;
    }
    t.type(parsed, 'object', `JSON: ${line}`);
  }
  const warning = lines.map((l) => JSON.parse(l) as { level: number; warning?: { name: string; code?: string; message: string } }).find((l) => l.warning?.code === 'DEP0060');
  t.ok(warning, 'the deprecation is logged');
  t.match(warning, { level: 40, warning: { name: 'DeprecationWarning', code: 'DEP0060', message: /util\._extend/ } }, 'at warn level, with name, code and message');
});
