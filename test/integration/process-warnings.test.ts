/**
 * Every line the process writes to stderr is JSON, process warnings included: a deprecation
 * or experimental warning from a dependency would otherwise be written raw into the log by
 * Node's own printer. The built CLI runs a WebSocket route under Node 24 when this machine
 * has one (SIDECAR_TEST_NODE24, default the CI's /tmp/n24 copy), else under this Node; a
 * preloaded module emits a DeprecationWarning in the running sidecar when it gets SIGUSR2
 * (the sidecar itself has no use for that signal).
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

t.test('a process warning in the running sidecar is a JSON log line', async (t) => {
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
  const warner = path.join(dir, 'warn-on-sigusr2.cjs');
  writeFileSync(warner, `process.on('SIGUSR2', () => process.emitWarning('a test deprecation', { type: 'DeprecationWarning', code: 'DEP_SIDECAR_TEST' }));\n`);
  const child = spawn(NODE, ['--require', warner, CLI_PATH, 'run', '-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
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
  const warned = new Promise<void>((resolve) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      if (line.includes('DEP_SIDECAR_TEST')) resolve();
    });
  });
  child.kill('SIGUSR2');
  await warned;
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
  const warning = lines.map((l) => JSON.parse(l) as { level: number; warning?: { name: string; code?: string; message: string } }).find((l) => l.warning?.code === 'DEP_SIDECAR_TEST');
  t.ok(warning, 'the deprecation is logged');
  t.match(warning, { level: 40, warning: { name: 'DeprecationWarning', code: 'DEP_SIDECAR_TEST', message: 'a test deprecation' } }, 'at warn level, with name, code and message');
});
