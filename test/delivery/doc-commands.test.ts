/**
 * Every shell command of the documentation (the ```sh blocks of README.md and docs/*.md) runs
 * as written, from folders outside the repository, or is listed below with the reason it
 * cannot run on a test machine, so that a new block is never skipped silently:
 *
 * - the repository's commands (`npm start` and the quick start's curls, /metrics through grep
 *   and promtool) run in a copy of the repository made in a temporary folder, as a clone is;
 * - the user's commands (`sidecar validate`, `sidecar run`, `sidecar certs`, ...) run in an
 *   empty folder holding the Guide's sidecar.yaml, with the package installed as the Guide
 *   says (npm pack, npm install -g: test/helpers/packed-install.ts), the demo app as the app.
 *
 * The documentation uses fixed ports (3000, 8080, 8443, 9901): the commands run in a network
 * namespace of their own (unshare -rn, loopback only), so nothing else on the machine can
 * hold those ports; without unshare they run on the machine's loopback when the ports are free.
 */
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../helpers/examples';
import { installPackedPackage } from '../helpers/packed-install';

const DOCS = ['README.md', ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
const DRIVER = path.join(ROOT, 'test', 'fixtures', 'doc-commands-driver.js');
const FIXED_PORTS = [3000, 4318, 8080, 8443, 9901];

interface DocCommand {
  readonly doc: string;
  /** Line of the command in its file (1-based). */
  readonly line: number;
  /** Index of its ```sh block in its file. */
  readonly block: number;
  /** The command as written, continuation lines joined, its trailing comment removed. */
  readonly text: string;
}

/** The commands of every ```sh block of `doc`. */
function docCommands(doc: string): DocCommand[] {
  const text = readFileSync(path.join(ROOT, doc), 'utf8');
  const found: DocCommand[] = [];
  let block = 0;
  for (const fence of text.matchAll(/^```sh\n([\s\S]*?)^```$/gm)) {
    const firstLine = text.slice(0, fence.index).split('\n').length + 1;
    const lines = fence[1].split('\n');
    for (let i = 0; i < lines.length; i++) {
      const start = i;
      let joined = lines[i];
      while (joined.endsWith('\\') && i + 1 < lines.length) joined = joined.slice(0, -1) + ' ' + lines[++i].trim();
      const command = joined.replace(/\s+#.*$/, '').trim().replace(/\s+/g, ' ');
      if (command === '' || command.startsWith('#')) continue;
      found.push({ doc, line: firstLine + start, block, text: command });
    }
    block++;
  }
  return found;
}

/**
 * How each command is run. `repo`: in the copy of the repository while the demo runs;
 * `user`: in the user's folder with the installed `sidecar`; `start-demo`: the demo itself;
 * `start-user`: a long-running `sidecar run`, stopped (SIGTERM) at the end of its block.
 */
type Runner = 'repo' | 'start-demo' | 'user' | 'start-user';

const RUN: Record<string, Runner> = {
  'npm ci && npm start': 'start-demo',
  'curl -i localhost:8080/': 'repo',
  'curl -i localhost:8080/sidecar-ping': 'repo',
  'curl -i localhost:8080/status/503': 'repo',
  'curl -i "localhost:8080/flaky?fail=2"': 'repo',
  'curl -s localhost:9901/metrics | grep sidecar_requests_total': 'repo',
  'curl -s localhost:9901/config': 'repo',
  'curl --cacert certs/ca.crt https://localhost:8443/': 'repo',
  'curl --cacert certs/ca.crt --http2 -i https://localhost:8443/': 'repo',
  "curl -s localhost:9901/metrics | grep -E '^sidecar_(requests_total|circuit_state|retries_total)'": 'repo',
  'curl -s localhost:9901/metrics | promtool check metrics': 'repo',
  'sidecar validate sidecar.yaml': 'user',
  'sidecar run -c sidecar.yaml': 'start-user',
  'sidecar certs --out certs --host localhost --client my-client': 'user',
  'sidecar certs --out certs --host localhost --host api.example.com --client my-client': 'user',
  'OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 sidecar run -c sidecar.yaml': 'start-user',
  'curl -s localhost:8080/': 'user',
  'curl -s localhost:8080/flaky?fail=2': 'user',
  'curl -si localhost:8080/status/503': 'user',
};

interface NotRun {
  readonly reason: string;
  /** Where the command (or what it stands for) is run or checked instead: a file holding `holds`. */
  readonly checkedIn?: { readonly file: string; readonly holds: string };
}

const NO_DOCKER = 'needs a Docker engine (the test machine has none)';
const BENCH = 'a benchmark: minutes of load, its figures are the machine\'s';

const NOT_RUN: Record<string, NotRun> = {
  'npm ci && npm test': { reason: 'the whole suite, this file included; npm ci would replace the node_modules the checkouts share', checkedIn: { file: '.ci/run', holds: 'npm test' } },
  'npm ci && npm pack': { reason: 'the install step: run by the packed-install helper (npm pack; npm ci would replace the shared node_modules)', checkedIn: { file: 'test/helpers/packed-install.ts', holds: "'pack'" } },
  'npm install -g ./sidecar-proxy-0.1.0.tgz': { reason: 'the install step: run by the packed-install helper, into a temporary prefix instead of the global one', checkedIn: { file: 'test/helpers/packed-install.ts', holds: "'install', '-g'" } },
  'docker compose -f examples/docker-compose/compose.yaml up --build': { reason: NO_DOCKER, checkedIn: { file: 'test/delivery/examples-compose.test.ts', holds: 'compose.yaml' } },
  'curl -k "https://localhost:8443/flaky?fail=1"': { reason: 'against the compose project above (Docker)' },
  'docker build -t sidecar:0.1.0 .': { reason: NO_DOCKER, checkedIn: { file: '.ci/run', holds: 'scripts/dockerfile-steps.sh' } },
  'docker run --rm -p 8080:8080 -v "$PWD/my-config:/etc/sidecar:ro" sidecar:0.1.0': { reason: NO_DOCKER, checkedIn: { file: 'scripts/dockerfile-steps.sh', holds: 'CMD' } },
  'grpcurl -plaintext -import-path ./protos -proto orders.proto -d \'{"id": "42"}\' 127.0.0.1:8080 orders.v1.Orders/Get': { reason: 'grpcurl is not installed, and the call needs a gRPC app; the same calls are made with @grpc/grpc-js', checkedIn: { file: 'test/integration/grpc-semantics.test.ts', holds: '@grpc/grpc-js' } },
  'npm test': { reason: 'the whole suite, this file included', checkedIn: { file: '.ci/run', holds: 'npm test' } },
  'npx tsc --noEmit -p .': { reason: 'type-checks the whole project (half a minute); CI\'s first step', checkedIn: { file: '.ci/run', holds: 'npx tsc --noEmit -p .' } },
  'npm run lint:layers': { reason: 'the same rules are checked by a delivery test', checkedIn: { file: 'test/delivery/layers.test.ts', holds: 'lint:layers' } },
  'npm run docs': { reason: 'rewrites committed files; a delivery test checks they are what it would write', checkedIn: { file: 'test/delivery/generated-files.test.ts', holds: 'DOCS_COMMAND' } },
  'scripts/dockerfile-steps.sh': { reason: 'a CI step of its own (builds the image\'s steps, a minute or more)', checkedIn: { file: '.ci/run', holds: 'scripts/dockerfile-steps.sh' } },
  'scripts/check-quickstart.sh': { reason: 'a CI step of its own; its commands run here too (`npm start` and the quick start block)', checkedIn: { file: '.ci/run', holds: 'scripts/check-quickstart.sh' } },
  'npm run bench': { reason: BENCH },
  'node scripts/soak.js': { reason: 'a soak: 30 minutes of load' },
  'BENCH_MARKDOWN=1 npm run bench': { reason: BENCH },
  'BENCH_ROUNDS=3 BENCH_MARKDOWN=1 npm run --silent bench 2>/dev/null': { reason: BENCH },
  'BENCH_ONLY=direct,sidecar,bare-undici node bench/run.js': { reason: BENCH },
  'BENCH_ONLY=sidecar-bare,sidecar-recorder BENCH_ROUNDS=3 BENCH_SECONDS=5 BENCH_MARKDOWN=1 node bench/run.js': { reason: BENCH },
  'node bench/recorder-cost.js': { reason: BENCH },
  'npm run build': { reason: 'the build: `npm start` runs it here, in the copy of the repository' },
  'BENCH_PROFILE=1 BENCH_ONLY=sidecar node bench/run.js': { reason: BENCH },
  'BENCH_PROFILE=sidecar-bare,sidecar-trace-100 BENCH_ONLY=sidecar-bare,sidecar-trace-100 node bench/run.js': { reason: BENCH },
  'uptime; BENCH_ROUNDS=3 BENCH_MARKDOWN=1 node bench/run.js 2>/dev/null; uptime': { reason: BENCH },
  'npm run build && node bench/route-regex.js': { reason: BENCH },
  'npm run build && node scripts/attack-probe.js': { reason: 'a load probe: HTTP/2 rapid reset and stalled bodies against a sidecar, for a person to read' },
  'npm run build && node scripts/soak.js': { reason: 'a soak: minutes of load' },
};

/** `npx tap FILE...` lines run test files of the suite (npm test runs them): they are checked to exist. */
const TAP_RUN = /^(npm run build && )?npx tap (test\/\S+\.test\.ts ?)+$/;

const ALL = DOCS.flatMap(docCommands);

t.test('every command of the documentation is run here or listed with the reason it is not', async (t) => {
  t.ok(ALL.length >= 40, `${ALL.length} commands in ${DOCS.join(', ')}`);
  for (const c of ALL) {
    const where = `${c.doc}:${c.line}`;
    if (RUN[c.text] !== undefined) continue;
    const notRun = NOT_RUN[c.text];
    if (notRun !== undefined) {
      t.comment(`not run: ${where} ${c.text} (${notRun.reason})`);
      continue;
    }
    if (TAP_RUN.test(c.text)) {
      const files = c.text.split(' ').filter((w) => w.startsWith('test/'));
      t.ok(files.every((f) => existsSync(path.join(ROOT, f))), `${where}: the test files it runs exist: ${files.join(' ')}`);
      continue;
    }
    t.fail(`${where}: \`${c.text}\` is neither run by this test nor listed in NOT_RUN with a reason`);
  }
  const texts = new Set(ALL.map((c) => c.text));
  for (const listed of [...Object.keys(RUN), ...Object.keys(NOT_RUN)]) t.ok(texts.has(listed), `listed, and still in the documentation: ${listed}`);
  for (const [text, { checkedIn }] of Object.entries(NOT_RUN)) {
    if (checkedIn === undefined) continue;
    const file = path.join(ROOT, checkedIn.file);
    t.ok(existsSync(file) && readFileSync(file, 'utf8').includes(checkedIn.holds), `${text}: ${checkedIn.file} holds ${checkedIn.holds}`);
  }
});

/** A copy of the repository's files (tracked and new, not ignored) and its built dist/, node_modules linked. */
function copyRepository(to: string): void {
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter((f) => f !== '' && existsSync(path.join(ROOT, f)));
  const distFiles = (dir: string): string[] =>
    readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? distFiles(path.join(dir, e.name)) : [path.join(dir, e.name)]));
  for (const file of [...files, ...distFiles('dist')]) {
    mkdirSync(path.join(to, path.dirname(file)), { recursive: true });
    copyFileSync(path.join(ROOT, file), path.join(to, file));
  }
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(to, 'node_modules'));
  rebaseBuildInfo(to);
}

/**
 * The copy keeps the build `npm test` made, as a clone built once does, so that its `npm
 * start` compiles nothing (the README says so). The build info names the files outside the
 * repository (node_modules' real paths) relative to dist/: those are rebased onto the copy.
 */
function rebaseBuildInfo(to: string): void {
  const file = path.join(to, 'dist', '.tsbuildinfo');
  if (!existsSync(file)) return;
  const info = JSON.parse(readFileSync(file, 'utf8')) as { fileNames?: string[] };
  info.fileNames = info.fileNames?.map((name) => {
    const absolute = path.resolve(ROOT, 'dist', name);
    return path.relative(ROOT, absolute).startsWith('..') ? path.relative(path.join(to, 'dist'), absolute) : name;
  });
  writeFileSync(file, JSON.stringify(info));
}

/** The Guide's sidecar.yaml: the first yaml block of "Put it in front of an app". */
function guideConfig(): string {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n### Put it in front of an app\n');
  const section = readme.slice(start, readme.indexOf('\n### ', start + 1));
  const yaml = /^```yaml\n([\s\S]*?)^```$/m.exec(section);
  if (start < 0 || yaml === null) throw new Error('README.md: no yaml block in "Put it in front of an app"');
  return yaml[1];
}

function unshareWorks(): boolean {
  return spawnSync('unshare', ['-rn', 'true']).status === 0;
}

async function portFree(port: number): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

interface StepResult {
  readonly status: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ready?: boolean;
  readonly ms: number;
  readonly stopMs?: number;
}

t.test('the commands run as written: the repository\'s in a copy of it, the user\'s in a folder of their own', async (t) => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'sidecar-doc-commands-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const began = Date.now();
  const repo = path.join(tmp, 'sidecar');
  copyRepository(repo);
  t.comment(`copied in ${Date.now() - began} ms`);
  const { bin } = installPackedPackage(tmp);
  t.comment(`installed in ${Date.now() - began} ms`);
  const user = path.join(tmp, 'my-app');
  mkdirSync(user);
  writeFileSync(path.join(user, 'sidecar.yaml'), guideConfig());

  const baseEnv = { ...process.env, NO_COLOR: '1', npm_config_update_notifier: 'false' };
  const userEnv = { ...baseEnv, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` };
  const steps: object[] = [];
  const byId = new Map<string, DocCommand>();
  const add = (c: DocCommand): string => {
    const id = `${c.doc}:${c.line}`;
    byId.set(id, c);
    return id;
  };
  const commands = ALL.filter((c) => RUN[c.text] !== undefined);
  const demo = commands.find((c) => RUN[c.text] === 'start-demo');
  if (demo === undefined) throw new Error('no `npm start` command in the documentation');
  // The repository's commands, while the demo runs. `npm ci &&` is not run: the copy links
  // the repository's node_modules.
  const demoId = add(demo);
  steps.push({ kind: 'start', id: demoId, text: demo.text.replace(/^npm ci && /, ''), cwd: repo, env: baseEnv, ready: '"sidecar ready"' });
  for (const c of commands.filter((c) => RUN[c.text] === 'repo')) steps.push({ kind: 'run', id: add(c), text: c.text, cwd: repo, env: baseEnv });
  steps.push({ kind: 'stop', id: demoId, signal: 'SIGINT', group: true });
  // The user's commands, in the documents' order, the demo app as their app on :3000; a
  // `sidecar run` keeps running for the commands after it in its block.
  steps.push({ kind: 'start', id: 'app', text: 'exec node examples/app/server.js', cwd: repo, env: baseEnv, ready: 'listening' });
  let running: { id: string; c: DocCommand } | undefined;
  const stopRunning = () => {
    if (running !== undefined) steps.push({ kind: 'stop', id: running.id, signal: 'SIGTERM', group: false });
    running = undefined;
  };
  for (const c of commands.filter((c) => RUN[c.text] === 'user' || RUN[c.text] === 'start-user')) {
    if (running !== undefined && (running.c.doc !== c.doc || running.c.block !== c.block)) stopRunning();
    if (RUN[c.text] === 'start-user') {
      stopRunning();
      running = { id: add(c), c };
      steps.push({ kind: 'start', id: running.id, text: c.text, cwd: user, env: userEnv, ready: '"sidecar ready"' });
    } else {
      steps.push({ kind: 'run', id: add(c), text: c.text, cwd: user, env: userEnv });
    }
  }
  stopRunning();
  steps.push({ kind: 'stop', id: 'app', signal: 'SIGTERM', group: false });
  const planFile = path.join(tmp, 'plan.json');
  writeFileSync(planFile, JSON.stringify({ steps }));

  let argv: string[];
  if (unshareWorks()) {
    argv = ['unshare', '-rn', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', process.execPath, DRIVER, planFile];
  } else {
    const taken = [];
    for (const port of FIXED_PORTS) if (!(await portFree(port))) taken.push(port);
    t.same(taken, [], 'without unshare the commands use the machine\'s loopback: its ports 3000, 4318, 8080, 8443 and 9901 must be free');
    if (taken.length > 0) return;
    argv = [process.execPath, DRIVER, planFile];
  }
  const driver = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 240_000, maxBuffer: 64 * 1024 * 1024 });
  t.equal(driver.status, 0, `the driver ran ${driver.stderr}`);
  const results = JSON.parse(driver.stdout || '{}') as Record<string, StepResult>;
  for (const [id, r] of Object.entries(results)) t.comment(`${id}: ${r.ms} ms ${r.stopMs ?? ''}`);
  const show = (r: StepResult | undefined) => (r === undefined ? 'not run' : `exit ${r.status ?? r.signal}\n${r.stdout}\n${r.stderr}`.trim());

  for (const [id, c] of byId) {
    const r = results[id];
    const runner = RUN[c.text];
    if (runner === 'start-demo' || runner === 'start-user') {
      t.ok(r?.ready, `${id} \`${c.text}\`: ready ${r?.ready ? '' : show(r)}`);
      // npm reports a child stopped by Ctrl-C as 130; the sidecar itself exits 0 after its drain.
      const clean = r !== undefined && (r.status === 0 || (runner === 'start-demo' && (r.status === 130 || r.signal === 'SIGINT')));
      t.ok(clean, `${id} \`${c.text}\`: a clean exit when stopped ${clean ? '' : show(r)}`);
      continue;
    }
    t.equal(r?.status, 0, `${id} \`${c.text}\`: exit 0 ${r?.status === 0 ? '' : show(r)}`);
    // promtool says nothing when the exposition is clean.
    if (c.text.startsWith('curl ') && !c.text.includes('promtool')) t.not(r?.stdout.trim() ?? '', '', `${id}: prints the answer`);
  }
  t.ok(existsSync(path.join(user, 'certs', 'server.crt')), 'sidecar certs wrote into the user\'s folder');
  t.notOk(existsSync(path.join(ROOT, 'my-app')), 'nothing written into the repository');
});
