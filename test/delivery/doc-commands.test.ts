/**
 * Every shell command of the documentation (the ```sh blocks of every .md file of the
 * repository: README.md, docs/, certs/, examples/, bench/) runs as written, from folders
 * outside the repository, or is listed below with the reason it cannot run on a test
 * machine, so that a new block is never skipped silently:
 *
 * - the repository's commands (`npm start` and the quick start's curls, /metrics through grep
 *   and promtool, the egress example) run in a copy of the repository made in a temporary
 *   folder, as a clone is, the demo running;
 * - the user's commands (`sidecar validate`, `sidecar run`, `sidecar certs`, openssl on the
 *   certificates, ...) run in an empty folder per document holding the Guide's sidecar.yaml,
 *   with the package installed as the Guide says (npm pack, npm install -g:
 *   test/helpers/packed-install.ts), the demo app as the app.
 *
 * The documentation uses fixed ports (3000, 8080, 8443, 9901, ...): the commands run in a network
 * namespace of their own (unshare -rn, loopback only), so nothing else on the machine can
 * hold those ports; without unshare they run on the machine's loopback when the ports are free.
 */
import t from 'tap';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../helpers/examples';
import { installPackedPackage } from '../helpers/packed-install';

/** README.md first (the order a newcomer reads in), then every other Markdown file of the repository. */
const DOCS = ['README.md', ...execFileSync('git', ['ls-files', '*.md'], { cwd: ROOT, encoding: 'utf8' }).split('\n').filter((f) => f !== '' && f !== 'README.md')];
const DRIVER = path.join(ROOT, 'test', 'fixtures', 'doc-commands-driver.js');
/** The documentation's ports: the demo's, the Guide's, a collector's, the egress example's. */
const FIXED_PORTS = [3000, 4318, 8080, 8443, 9443, 9901, 9902, 15001];

interface DocCommand {
  readonly doc: string;
  /** Line of the command in its file (1-based). */
  readonly line: number;
  /** Index of its ```sh block in its file. */
  readonly block: number;
  /** The command as written, continuation lines joined, its trailing comment removed. */
  readonly text: string;
}

/** The commands of every ```sh block of `doc`, whose text is `text`. */
function docCommands(doc: string, text = readFileSync(path.join(ROOT, doc), 'utf8')): DocCommand[] {
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
 * `user`: in the document's user folder, the installed `sidecar` on the PATH; `demo`: the
 * demo itself (`npm start`), stopped by Ctrl-C once the repository's commands have run.
 * A `sidecar run` or a line ending in `&` is long-running: started, awaited until ready, and
 * stopped (SIGTERM) at the end of its block. `status`: the exit status the line has as
 * written, when it is not 0.
 */
type Runner = 'demo' | 'repo' | 'user';
type HowRun = Runner | { readonly runner: Runner; readonly status: number; readonly why: string };

const RUN: Record<string, HowRun> = {
  // README.md
  'npm ci && npm start': 'demo',
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
  'sidecar run -c sidecar.yaml': 'user',
  'sidecar certs --out certs --host localhost --client my-client': 'user',
  'sidecar certs --out certs --host localhost --host api.example.com --client my-client': 'user',
  'OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 sidecar run -c sidecar.yaml': 'user',
  'curl -s localhost:8080/': 'user',
  'curl -s localhost:8080/flaky?fail=2': 'user',
  'curl -si localhost:8080/status/503': 'user',
  // certs/README.md: the files in the user's folder; a running listener: the demo's.
  'sidecar certs --out certs --host localhost --ip 127.0.0.1 --client my-client': 'user',
  'openssl verify -CAfile certs/ca.crt certs/server.crt certs/client.crt': 'user',
  'openssl verify -CAfile certs/ca.crt -purpose sslserver -verify_hostname localhost certs/server.crt': 'user',
  'openssl x509 -in certs/server.crt -noout -text': 'user',
  'openssl x509 -in certs/server.crt -noout -subject -issuer -serial -dates -ext subjectAltName,extendedKeyUsage': 'user',
  'openssl x509 -in certs/server.crt -noout -pubkey | openssl sha256': 'user',
  'openssl pkey -in certs/server.key -pubout | openssl sha256': 'user',
  'openssl s_client -connect 127.0.0.1:8443 -servername localhost -CAfile certs/ca.crt -brief </dev/null': 'repo',
  // examples/egress/README.md
  'node dist/cli.js certs --out examples/egress/certs --host payments.example --host localhost': 'repo',
  'node examples/egress/payments.js &': 'repo',
  'node dist/cli.js run -c examples/egress/sidecar.yaml &': 'repo',
  "curl -s -H 'Host: payments.example' -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' http://127.0.0.1:15001/charges/42": 'repo',
  "curl -s -H 'Host: payments.example' http://127.0.0.1:15001/flaky": 'repo',
  'curl -s --proxy http://127.0.0.1:15001 --cacert examples/egress/certs/ca.crt https://localhost:9443/charges/7': 'repo',
  'curl -s --proxy http://127.0.0.1:15001 https://example.com/': { runner: 'repo', status: 56, why: 'curl\'s "CONNECT tunnel failed": the sidecar answered 403 EGRESS_DENIED' },
  // examples/kubernetes/README.md
  'sidecar certs --out certs --host orders --host orders.default.svc --host orders.default.svc.cluster.local': 'user',
};

const runnerOf = (how: HowRun): Runner => (typeof how === 'string' ? how : how.runner);
const statusOf = (how: HowRun): number => (typeof how === 'string' ? 0 : how.status);
const longRunning = (text: string): boolean => / run -c /.test(text) || text.endsWith(' &');

interface NotRun {
  readonly reason: string;
  /** Where the command (or what it stands for) is run or checked instead: a file holding `holds`. */
  readonly checkedIn?: { readonly file: string; readonly holds: string };
}

const NO_DOCKER = 'needs a Docker engine (the test machine has none)';
const BENCH = 'a benchmark: minutes of load, its figures are the machine\'s';
const HOST = 'installs into /opt and /etc as root, adds a system user and a systemd unit';
const NO_KUBERNETES = 'needs a Kubernetes cluster (the test machine has none)';

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
  'BENCH_ONLY=sidecar-bare,sidecar-recorder BENCH_ROUNDS=5 BENCH_MARKDOWN=1 node bench/run.js': { reason: BENCH },
  'node bench/recorder-cost.js': { reason: BENCH },
  'for row in sidecar-bare sidecar-access-log sidecar-recorder sidecar-trace-1 sidecar; do node bench/gc-per-request.js $row; done': { reason: BENCH },
  'BENCH_ONLY=sidecar,sidecar-bare,bare-undici BENCH_SECONDS=3 node bench/run.js': { reason: BENCH },
  'BENCH_NODE_FLAGS=--no-maglev BENCH_ONLY=sidecar,sidecar-bare,bare-undici BENCH_SECONDS=3 node bench/run.js': { reason: BENCH },
  'SIDECAR_DIST=/path/to/other/dist node bench/recorder-cost.js': { reason: BENCH },
  'BENCH_ONLY=sidecar,sidecar-bare,bare-undici,node-http-proxy,fastify-http-proxy,sidecar-trace-1,sidecar-trace-100 BENCH_ROUNDS=3 BENCH_MARKDOWN=1 node bench/run.js': { reason: BENCH },
  // docs/PERFORMANCE.md: the before/after comparison of two builds, in turn.
  'git worktree add /tmp/old <old-commit> && ln -s "$PWD/node_modules" /tmp/old/node_modules && (cd /tmp/old && npm run build)': { reason: 'builds another commit to compare with (a placeholder commit, for a person to fill in)' },
  'for round in 1 2; do': { reason: BENCH },
  'for dist in /tmp/old/dist dist; do': { reason: BENCH },
  'SIDECAR_DIST=$dist node bench/hot-path-parts.js': { reason: BENCH },
  'SIDECAR_DIST=$dist node bench/policy-cost.js 3000 5': { reason: BENCH },
  done: { reason: 'the end of a benchmark loop above' },
  'npm run build': { reason: 'the build: `npm start` runs it here, in the copy of the repository' },
  'BENCH_PROFILE=1 BENCH_ONLY=sidecar node bench/run.js': { reason: BENCH },
  'BENCH_PROFILE=sidecar-bare,sidecar-trace-100 BENCH_ONLY=sidecar-bare,sidecar-trace-100 node bench/run.js': { reason: BENCH },
  'uptime; BENCH_ROUNDS=3 BENCH_MARKDOWN=1 node bench/run.js 2>/dev/null; uptime': { reason: BENCH },
  'npm run build && node bench/route-regex.js': { reason: BENCH },
  'npm run build && node scripts/attack-probe.js': { reason: 'a load probe: HTTP/2 rapid reset and stalled bodies against a sidecar, for a person to read' },
  'npm run build && node scripts/soak.js': { reason: 'a soak: minutes of load' },
  // certs/README.md
  'curl --cacert certs/ca.crt --cert certs/client.crt --key certs/client.key https://localhost:8443/': { reason: 'needs a listener with clientCa (mutual TLS): the demo has none', checkedIn: { file: 'test/integration/mtls-listener.test.ts', holds: 'clientCa' } },
  // examples/docker-compose/README.md
  'curl -k https://localhost:8443/': { reason: 'against the compose project (Docker)' },
  'curl -k "https://localhost:8443/flaky?fail=2"': { reason: 'against the compose project (Docker)' },
  'curl -k "https://localhost:8443/slow?ms=3000"': { reason: 'against the compose project (Docker)' },
  "curl -s -H 'Authorization: Bearer demo-admin-token-change-me' localhost:9901/metrics | grep sidecar_retries_total": { reason: 'against the compose project (Docker)' },
  'docker compose -f examples/docker-compose/compose.yaml exec sidecar sidecar status --token demo-admin-token-change-me': { reason: NO_DOCKER },
  // examples/egress/README.md and examples/host/README.md
  'npm ci && npm run build': { reason: 'npm ci would replace the node_modules the checkouts share; the copy of the repository is built' },
  // examples/host/README.md: root, a system user, /opt, /etc and systemd.
  'sudo install -d /opt/sidecar': { reason: HOST },
  'sudo cp -r dist package.json package-lock.json /opt/sidecar/': { reason: HOST },
  '(cd /opt/sidecar && sudo npm ci --omit=dev --no-audit --no-fund)': { reason: HOST },
  'sudo useradd --system --no-create-home --shell /usr/sbin/nologin sidecar': { reason: HOST },
  'sudo install -d -m 0750 -g sidecar /etc/sidecar': { reason: HOST },
  'sudo cp examples/host/sidecar.yaml /etc/sidecar/': { reason: HOST },
  'sudo node /opt/sidecar/dist/cli.js certs --out /etc/sidecar/tls --host "$(hostname -f)"': { reason: HOST, checkedIn: { file: 'test/delivery/examples-host.test.ts', holds: 'certs --out' } },
  'sudo chgrp sidecar /etc/sidecar/tls /etc/sidecar/tls/server.key': { reason: HOST },
  'sudo chmod 0750 /etc/sidecar/tls && sudo chmod 0640 /etc/sidecar/tls/server.key': { reason: HOST },
  'sudo cp examples/host/sidecar.service /etc/systemd/system/': { reason: HOST },
  'sudo systemctl daemon-reload && sudo systemctl enable --now sidecar': { reason: HOST },
  'sudo curl --cacert /etc/sidecar/tls/ca.crt "https://$(hostname -f):8443/sidecar-ping"': { reason: HOST },
  'journalctl -u sidecar -f': { reason: HOST },
  'sudo systemctl reload sidecar': { reason: HOST },
  'node /opt/sidecar/dist/cli.js status': { reason: HOST },
  'sudo systemctl restart sidecar': { reason: HOST },
  // examples/kubernetes/README.md
  'docker build -t sidecar-demo-app:0.1.0 examples/app': { reason: NO_DOCKER },
  'kubectl create secret tls orders-sidecar-tls --cert=certs/server.crt --key=certs/server.key': { reason: NO_KUBERNETES },
  'kubectl apply -k examples/kubernetes': { reason: NO_KUBERNETES, checkedIn: { file: 'test/delivery/examples-kubernetes.test.ts', holds: 'kustomization.yaml' } },
  'kubectl port-forward service/orders 8443:443 &': { reason: NO_KUBERNETES },
  'curl --cacert certs/ca.crt --resolve orders:8443:127.0.0.1 https://orders:8443/': { reason: 'through the port-forward above (Kubernetes)' },
  // bench/README.md
  'node bench/run.js': { reason: BENCH },
  'BENCH_SECONDS=2 node bench/run.js': { reason: BENCH },
  'SIDECAR_CONFIG=/path/to/traced.yaml node bench/run.js': { reason: BENCH },
  'bash bench/instructions.sh bench/peers-sidecar.yaml my-variant.yaml bench/peers-sidecar.yaml my-variant.yaml': { reason: BENCH },
  'bash bench/instructions.sh bare-undici bench/peers-sidecar.yaml bare-undici bench/peers-sidecar.yaml': { reason: BENCH },
  'apt-get update && apt-get install -y nginx-light haproxy wrk hey': { reason: 'installs system packages from the network, as root' },
  'BENCH_PIN=0 SIDECAR_CONFIG=bench/sidecar-workers.yaml BENCH_ONLY=sidecar node bench/run.js': { reason: BENCH },
  'NODE_CLUSTER_SCHED_POLICY=rr BENCH_PIN=0 SIDECAR_CONFIG=bench/sidecar-workers.yaml BENCH_ONLY=sidecar node bench/run.js': { reason: BENCH },
  'node bench/peers/upstream.js --port 18080 &': { reason: 'the bench\'s peers started by hand, for a profiler' },
  'node dist/cli.js run -c bench/peers-sidecar.yaml': { reason: 'the bench\'s peers started by hand, for a profiler' },
};

/** `npx tap FILE...` lines run test files of the suite (npm test runs them): they are checked to exist. */
const TAP_RUN = /^(npm run build && )?npx tap (test\/\S+\.test\.ts ?)+$/;

const ALL = DOCS.flatMap((doc) => docCommands(doc));

/** The commands neither run here, nor listed with a reason, nor test runs. */
function unaccounted(commands: readonly DocCommand[]): DocCommand[] {
  return commands.filter((c) => RUN[c.text] === undefined && NOT_RUN[c.text] === undefined && !TAP_RUN.test(c.text));
}

t.test('a new command, or a changed one, is reported until it is run or listed', async (t) => {
  const doc = [
    '```sh',
    'curl -i localhost:8080/      # a comment',
    '# a comment line',
    'docker run --rm \\',
    '  sidecar:0.2.0',
    'npx tap test/unit/units.test.ts',
    '```',
    '```console',
    '$ not a command block',
    '```',
  ].join('\n');
  const found = docCommands('NEW.md', doc);
  t.same(found.map((c) => [c.line, c.block, c.text]), [[2, 0, 'curl -i localhost:8080/'], [4, 0, 'docker run --rm sidecar:0.2.0'], [6, 0, 'npx tap test/unit/units.test.ts']], 'commands, continuations joined, comments and other blocks left out');
  t.same(unaccounted(found).map((c) => c.text), ['docker run --rm sidecar:0.2.0'], 'the unlisted one is reported');
});

t.test('every command of the documentation is run here or listed with the reason it is not', async (t) => {
  t.ok(ALL.length >= 40, `${ALL.length} commands in ${DOCS.join(', ')}`);
  for (const c of unaccounted(ALL)) t.fail(`${c.doc}:${c.line}: \`${c.text}\` is neither run by this test nor listed in NOT_RUN with a reason`);
  for (const c of ALL) {
    const where = `${c.doc}:${c.line}`;
    const notRun = NOT_RUN[c.text];
    if (notRun !== undefined) t.comment(`not run: ${where} ${c.text} (${notRun.reason})`);
    if (RUN[c.text] === undefined && notRun === undefined && TAP_RUN.test(c.text)) {
      const files = c.text.split(' ').filter((w) => w.startsWith('test/'));
      t.ok(files.every((f) => existsSync(path.join(ROOT, f))), `${where}: the test files it runs exist: ${files.join(' ')}`);
    }
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
 * start` compiles nothing (the README says so). The build info names every file relative to
 * dist/; the compiler sees the packages at their real paths, which stay where they are (the
 * copy's node_modules is a link), so those names are rebased onto the copy's dist/.
 */
function rebaseBuildInfo(to: string): void {
  const file = path.join(to, 'dist', '.tsbuildinfo');
  if (!existsSync(file)) return;
  const info = JSON.parse(readFileSync(file, 'utf8')) as { fileNames?: string[] };
  const own = (absolute: string): boolean => {
    const relative = path.relative(ROOT, absolute);
    return !relative.startsWith('..') && !relative.startsWith(`node_modules${path.sep}`);
  };
  info.fileNames = info.fileNames?.map((name) => {
    const absolute = path.resolve(ROOT, 'dist', name);
    return own(absolute) ? name : path.relative(path.join(to, 'dist'), absolute);
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

/** A network namespace of our own, its loopback up (unshare from util-linux, ip from iproute2). */
function unshareWorks(): boolean {
  return spawnSync('unshare', ['-rn', 'sh', '-c', 'ip link set lo up']).status === 0;
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
  const builtAt = statSync(path.join(repo, 'dist', 'cli.js')).mtimeMs;
  t.comment(`copied in ${Date.now() - began} ms`);
  const { bin } = installPackedPackage(tmp);
  t.comment(`installed in ${Date.now() - began} ms`);
  const userFolders = new Map<string, string>();
  /** The document's user folder: empty but for the Guide's sidecar.yaml. */
  const userFolder = (doc: string): string => {
    const existing = userFolders.get(doc);
    if (existing !== undefined) return existing;
    const folder = path.join(tmp, 'users', doc.replace(/\//g, '-').replace(/\.md$/, ''));
    mkdirSync(folder, { recursive: true });
    writeFileSync(path.join(folder, 'sidecar.yaml'), guideConfig());
    userFolders.set(doc, folder);
    return folder;
  };

  const baseEnv = { ...process.env, NO_COLOR: '1', npm_config_update_notifier: 'false' };
  const userEnv = { ...baseEnv, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` };
  let steps: object[] = [];
  const byId = new Map<string, DocCommand>();
  const add = (c: DocCommand): string => {
    const id = `${c.doc}:${c.line}`;
    byId.set(id, c);
    return id;
  };
  let running: { id: string; c: DocCommand }[] = [];
  const stopRunning = (keep: (c: DocCommand) => boolean = () => false) => {
    for (const r of running.filter((r) => !keep(r.c)).reverse()) steps.push({ kind: 'stop', id: r.id, signal: 'SIGTERM', group: false });
    running = running.filter((r) => keep(r.c));
  };
  /** The commands of `runner`, in the documents' order; a long-running one serves the rest of its block. */
  const plan = (runner: Runner, cwdOf: (c: DocCommand) => string, env: NodeJS.ProcessEnv) => {
    for (const c of ALL.filter((c) => RUN[c.text] !== undefined && runnerOf(RUN[c.text]) === runner)) {
      stopRunning((r) => r.doc === c.doc && r.block === c.block);
      const id = add(c);
      if (longRunning(c.text)) {
        running.push({ id, c });
        const ready = c.text.includes(' run -c ') ? '"sidecar ready"' : 'listening';
        steps.push({ kind: 'start', id, text: c.text.replace(/\s*&$/, ''), cwd: cwdOf(c), env, ready });
      } else {
        steps.push({ kind: 'run', id, text: c.text, cwd: cwdOf(c), env });
      }
    }
    stopRunning();
  };

  // The repository's commands, while the demo runs. `npm ci &&` is not run: the copy links
  // the repository's node_modules.
  const demo = ALL.find((c) => RUN[c.text] === 'demo');
  if (demo === undefined) throw new Error('no `npm start` command in the documentation');
  const demoId = add(demo);
  steps.push({ kind: 'start', id: demoId, text: demo.text.replace(/^npm ci && /, ''), cwd: repo, env: baseEnv, ready: '"sidecar ready"' });
  plan('repo', () => repo, baseEnv);
  steps.push({ kind: 'stop', id: demoId, signal: 'SIGINT', group: true });
  const repoSteps = steps;
  steps = [];
  // The user's commands, the demo app as their app on :3000.
  steps.push({ kind: 'start', id: 'app', text: 'exec node examples/app/server.js', cwd: repo, env: baseEnv, ready: 'listening' });
  plan('user', (c) => userFolder(c.doc), userEnv);
  steps.push({ kind: 'stop', id: 'app', signal: 'SIGTERM', group: false });
  const userSteps = steps;

  // In a network namespace each, the two parts run side by side; on the machine's loopback,
  // one after the other.
  const isolated = unshareWorks();
  if (!isolated) {
    const taken = [];
    for (const port of FIXED_PORTS) if (!(await portFree(port))) taken.push(port);
    t.same(taken, [], `without unshare the commands use the machine's loopback: its ports ${FIXED_PORTS.join(', ')} must be free`);
    if (taken.length > 0) return;
  }
  const drive = (name: string, planSteps: object[]): Promise<{ status: number | null; stdout: string; stderr: string }> => {
    const planFile = path.join(tmp, `${name}.json`);
    writeFileSync(planFile, JSON.stringify({ steps: planSteps }));
    const argv = isolated ? ['unshare', '-rn', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', process.execPath, DRIVER, planFile] : [process.execPath, DRIVER, planFile];
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    return new Promise((resolve) => child.once('close', (status) => resolve({ status, stdout, stderr })));
  };
  const parts = isolated
    ? await Promise.all([drive('repository', repoSteps), drive('user', userSteps)])
    : [await drive('repository', repoSteps), await drive('user', userSteps)];
  const results: Record<string, StepResult> = {};
  for (const part of parts) {
    t.equal(part.status, 0, `the driver ran ${part.stderr}`);
    Object.assign(results, JSON.parse(part.stdout || '{}') as Record<string, StepResult>);
  }
  for (const [id, r] of Object.entries(results)) t.comment(`${id}: ${r.ms} ms ${r.stopMs ?? ''}`);
  const show = (r: StepResult | undefined) => (r === undefined ? 'not run' : `exit ${r.status ?? r.signal}\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`.trim());
  // Node's own warning printer writes `(node:PID) ...Warning: ...`; the sidecar's warnings are
  // JSON log lines. npm's are `npm warn ...`. A newcomer's commands print neither.
  const rawWarnings = (r: StepResult | undefined): string[] =>
    `${r?.stdout ?? ''}\n${r?.stderr ?? ''}`.split('\n').filter((line) => /^\(node:\d+\) |^npm warn/i.test(line));

  for (const [id, c] of byId) {
    const r = results[id];
    const how = RUN[c.text];
    t.same(rawWarnings(r), [], `${id} \`${c.text}\`: no raw warning`);
    if (runnerOf(how) === 'demo' || longRunning(c.text)) {
      t.ok(r?.ready, `${id} \`${c.text}\`: ready ${r?.ready ? '' : show(r)}`);
      // npm reports a child stopped by Ctrl-C as 130 (or is stopped by it); a sidecar exits 0
      // after its drain; another program may end by the signal itself.
      const clean =
        r !== undefined &&
        (r.status === 0 ||
          (runnerOf(how) === 'demo' && (r.status === 130 || r.signal === 'SIGINT')) ||
          (!c.text.includes(' run -c ') && r.signal === 'SIGTERM'));
      t.ok(clean, `${id} \`${c.text}\`: a clean exit when stopped ${clean ? '' : show(r)}`);
      continue;
    }
    const expected = statusOf(how);
    t.equal(r?.status, expected, `${id} \`${c.text}\`: exit ${expected}${typeof how === 'string' ? '' : ` (${how.why})`} ${r?.status === expected ? '' : show(r)}`);
    // promtool says nothing when the exposition is clean.
    if (expected === 0 && c.text.startsWith('curl ') && !c.text.includes('promtool')) t.not(r?.stdout.trim() ?? '', '', `${id}: prints the answer`);
  }
  t.equal(statSync(path.join(repo, 'dist', 'cli.js')).mtimeMs, builtAt, '`npm start` compiled nothing: nothing had changed since the build (a dist/ older than src/ fails here: npm run build)');
  const readmeUser = userFolders.get('README.md');
  t.ok(readmeUser !== undefined && existsSync(path.join(readmeUser, 'certs', 'server.crt')), 'sidecar certs wrote into the user\'s folder');
  t.ok(existsSync(path.join(repo, 'examples', 'egress', 'certs', 'ca.crt')), 'the egress example\'s certificates written in the copy of the repository');
});
