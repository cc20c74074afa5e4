/**
 * The Dockerfile as scripts/dockerfile-steps.sh reads it (`--plan`): the script handles
 * every instruction (so CI really runs the image's steps), and the image keeps its promises:
 * pinned LTS base, build and runtime stages, production dependencies only, a non-root user,
 * the ports of the examples, a health check, `sidecar run -c /etc/sidecar/sidecar.yaml`.
 * CI runs the steps themselves (.ci/run); they take minutes, too long for every `npm test`.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_ADMIN_ADDRESS } from '../../src/config/defaults';
import { ROOT, compiledConfig, exampleYamlFiles, classify } from '../helpers/examples';

interface Step {
  readonly stage: string;
  readonly keyword: string;
  readonly args: string;
}

const SCRIPT = path.join(ROOT, 'scripts', 'dockerfile-steps.sh');
const CONFIG_PATH_IN_IMAGE = '/etc/sidecar/sidecar.yaml';
/** Node.js release lines with long-term support that this package runs on (package.json engines). */
const SUPPORTED_LTS_MAJORS = [20, 22, 24];

const plan = spawnSync('bash', [SCRIPT, '--plan'], { cwd: ROOT, encoding: 'utf8' });
const steps: Step[] = plan.stdout
  .split('\n')
  .filter((line) => line !== '')
  .map((line) => {
    const [stage, keyword, args] = line.split('\t');
    return { stage, keyword, args };
  });
const stages = [...new Set(steps.map((s) => s.stage))];
const finalStage = stages[stages.length - 1];
const inFinal = (keyword: string): Step[] => steps.filter((s) => s.stage === finalStage && s.keyword === keyword);
const dockerfileInstructions = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')
  .replace(/\\\n/g, ' ')
  .split('\n')
  .filter((line) => /^[A-Z]+\s/.test(line));

t.test('the steps script handles every instruction of the Dockerfile', async (t) => {
  t.equal(plan.status, 0, `--plan exits 0 ${plan.stderr}`);
  t.equal(steps.length, dockerfileInstructions.length, `${steps.length} steps for ${dockerfileInstructions.length} instructions`);
  t.same(
    steps.map((s) => s.keyword),
    dockerfileInstructions.map((line) => line.split(/\s/)[0]),
    'the same instructions, in order',
  );
});

t.test('two stages on the same pinned Node.js LTS slim image', async (t) => {
  const froms = steps.filter((s) => s.keyword === 'FROM').map((s) => s.args.split(/\s+/)[0]);
  t.ok(froms.length >= 2, `${froms.length} stages`);
  t.equal(new Set(froms).size, 1, `every stage on ${froms[0]}`);
  const m = /^node:(\d+)\.\d+\.\d+-[a-z]+-slim$/.exec(froms[0] ?? '');
  t.ok(m, `${froms[0]} is node:X.Y.Z-<debian>-slim`);
  t.ok(SUPPORTED_LTS_MAJORS.includes(Number(m?.[1])), `Node ${m?.[1]} is a supported LTS line`);
  const appDockerfile = readFileSync(path.join(ROOT, 'examples', 'app', 'Dockerfile'), 'utf8');
  t.match(appDockerfile, `FROM ${froms[0]}\n`, 'the demo app image uses the same base');
});

t.test('the build stage compiles; the runtime stage installs production dependencies only', async (t) => {
  const runs = (stage: string): string => steps.filter((s) => s.stage === stage && s.keyword === 'RUN').map((s) => s.args).join('\n');
  t.match(runs(stages[0]), /npm ci\b/, 'build: npm ci with dev dependencies');
  t.match(runs(stages[0]), /npm run build/, 'build: compiles');
  t.match(runs(finalStage), /npm ci --omit=dev/, 'runtime: npm ci --omit=dev');
  t.ok(inFinal('COPY').some((s) => /--from=\S+ \S*\/dist\b/.test(s.args)), 'runtime: dist/ from the build stage');
  t.notOk(inFinal('COPY').some((s) => /(^|\s)(src|test|\.)(\s|$)/.test(s.args.replace(/\s\S+$/, ''))), 'runtime: no sources or whole-context copies');
});

t.test('the runtime runs as a numeric non-root user with the health check and command the examples expect', async (t) => {
  const user = inFinal('USER').pop()?.args ?? '';
  t.match(user, /^[1-9]\d*(:\d+)?$/, `USER ${user}: numeric (runAsNonRoot can verify it) and not root`);
  // node with --no-maglev (docs/PERFORMANCE.md, "Memory on the image's Node"), then the CLI the
  // runtime stage copied; `sidecar` stays on the PATH for `docker exec`.
  const workdir = inFinal('WORKDIR').pop()?.args ?? '';
  t.same(JSON.parse(inFinal('ENTRYPOINT').pop()?.args ?? 'null'), ['node', '--no-maglev', `${workdir}/dist/cli.js`], 'ENTRYPOINT node --no-maglev WORKDIR/dist/cli.js');
  t.ok(inFinal('RUN').some((s) => /ln -s \.\.\/dist\/cli\.js bin\/sidecar/.test(s.args)), 'sidecar on the PATH');
  t.same(JSON.parse(inFinal('CMD').pop()?.args ?? 'null'), ['run', '-c', CONFIG_PATH_IN_IMAGE], `CMD run -c ${CONFIG_PATH_IN_IMAGE}`);
  const health = inFinal('HEALTHCHECK').pop()?.args ?? '';
  const env = inFinal('ENV').map((s) => s.args).join(' ');
  t.match(health, /\bCMD \[.*(SIDECAR_ADMIN_URL|wait-ready)/, 'HEALTHCHECK asks the admin listener (exec form)');
  t.notMatch(health, /SIDECAR_HEALTHCHECK_URL/, 'through the one admin URL variable of the CLI');
  if (health.includes('SIDECAR_ADMIN_URL')) {
    t.match(env, `SIDECAR_ADMIN_URL=http://${DEFAULT_ADMIN_ADDRESS}`, 'it defaults to the default admin address');
  }
  t.match(env, /NODE_ENV=production/, 'NODE_ENV=production');
});

t.test('EXPOSE lists the listener and admin ports of every example route file (those not bound to loopback)', async (t) => {
  const exposed = new Set((inFinal('EXPOSE').pop()?.args ?? '').split(/\s+/).map(Number));
  const routeFiles = exampleYamlFiles().filter((f) => classify(f) === 'route-file');
  for (const file of routeFiles) {
    const config = await compiledConfig(file);
    // A listener on 127.0.0.1 (an egress listener for the app beside the sidecar) is not for other hosts.
    const reachable = [...config.listeners, config.admin].filter((l) => !l.host.startsWith('127.') && l.host !== '::1' && l.host !== 'localhost');
    for (const port of reachable.map((l) => l.port)) t.ok(exposed.has(port), `${file}: ${port} is exposed`);
  }
});

t.test('.dockerignore keeps secrets, builds and local installs out of the build context', async (t) => {
  const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
  for (const pattern of ['.git', 'node_modules', 'dist', '**/*.key', '**/*.pem', '**/.env']) t.ok(ignored.includes(pattern), `${pattern} is ignored`);
});

t.test('the steps script refuses what it cannot run faithfully', async (t) => {
  const run = (dockerfile: string): { status: number | null; stderr: string } => {
    const dir = spawnSync('mktemp', ['-d'], { encoding: 'utf8' }).stdout.trim();
    spawnSync('bash', ['-c', `mkdir -p "$1/scripts" && cp "$0" "$1/scripts/" && cat > "$1/Dockerfile"`, SCRIPT, dir], { input: dockerfile });
    const result = spawnSync('bash', [path.join(dir, 'scripts', 'dockerfile-steps.sh'), '--plan'], { cwd: dir, encoding: 'utf8' });
    spawnSync('rm', ['-rf', dir]);
    return { status: result.status, stderr: result.stderr };
  };
  const absolute = run('FROM node:24.21.0-bookworm-slim\nWORKDIR /app\nRUN ln -s /app/dist/cli.js /usr/local/bin/sidecar\n');
  t.equal(absolute.status, 1, 'a RUN step with an absolute path fails');
  t.match(absolute.stderr, /absolute path \/app\/dist\/cli\.js/, 'and names the path');
  const unknown = run('FROM node:24.21.0-bookworm-slim\nADD https://example.com/x.tgz .\n');
  t.equal(unknown.status, 1, 'an instruction the script does not handle fails');
  t.match(unknown.stderr, /instruction ADD is not handled/, 'and names it');
});
