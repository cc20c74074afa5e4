/**
 * The install path the README's Guide gives (`npm pack`, then `npm install -g` of the
 * tarball) yields a `sidecar` command that works from any folder, and the Guide's commands
 * run as written there (test/helpers/packed-install.ts). Every other command of the
 * documentation: test/delivery/doc-commands.test.ts.
 */
import t from 'tap';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parse } from 'yaml';
import { ROOT } from '../helpers/examples';
import { installPackedPackage, PACKAGE, TARBALL } from '../helpers/packed-install';

const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

function section(heading: string): string {
  const start = README.indexOf(`\n### ${heading}\n`);
  const end = README.indexOf('\n### ', start + 1);
  return start < 0 ? '' : README.slice(start, end < 0 ? undefined : end);
}
function fences(text: string, lang: string): string[] {
  return [...text.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].filter((m) => m[1] === lang).map((m) => m[2]);
}
/** Command lines of the sh blocks, without their trailing comments. */
function commands(text: string): string[] {
  return fences(text, 'sh').flatMap((body) => body.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter((l) => l !== '' && !l.startsWith('#')));
}

const USER_CONFIG = `admin: { address: 127.0.0.1:0 }
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes:
      - name: ping
        match: { prefix: / }
        directResponse: { status: 200, body: "pong" }
clusters: []
drain: { delay: 0s, timeout: 5s }
`;

t.test('the README names the package and installs it with npm pack + npm install -g', async (t) => {
  t.equal(PACKAGE.name, 'sidecar-proxy', 'a name that is not the registry\'s unrelated `sidecar`');
  t.same(Object.keys(PACKAGE.bin), ['sidecar'], 'the command is `sidecar`');
  const install = commands(section('Put it in front of an app'));
  t.ok(install.includes('npm ci && npm pack'), 'npm pack');
  t.ok(install.includes(`npm install -g ./${TARBALL}`), `npm install -g ./${TARBALL}`);
  t.notMatch(README, /npx sidecar\b/, 'no `npx sidecar` (outside the repository it runs the registry package)');
});

t.test('the packed package, installed in a prefix, runs the Guide\'s commands from a folder outside the repository', async (t) => {
  t.ok(existsSync(path.join(ROOT, 'dist', 'cli.js')), 'dist/ is built (npm test builds it)');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'sidecar-install-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const { tarball, bin } = installPackedPackage(tmp);
  t.ok(existsSync(tarball), `npm pack wrote ${TARBALL}`);
  const listing = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).split('\n');
  t.ok(listing.includes('package/dist/cli.js') && listing.includes('package/package.json'), 'the CLI and package.json are packed');
  t.notOk(listing.some((f) => /^package\/(src|test|certs|node_modules)\//.test(f) || f.endsWith('.key')), 'no sources, tests, keys or modules');
  t.ok(existsSync(path.join(bin, 'sidecar')), 'npm linked the `sidecar` command');

  const work = path.join(tmp, 'my-app');
  mkdirSync(work);
  writeFileSync(path.join(work, 'sidecar.yaml'), USER_CONFIG);
  const env = { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` };
  const sh = (line: string) => spawnSync('sh', ['-c', line], { cwd: work, env, encoding: 'utf8', timeout: 60_000 });

  const guide = commands(section('Put it in front of an app') + section('Add TLS')).filter((l) => l.startsWith('sidecar '));
  t.same(guide.map((l) => l.split(' ')[1]), ['validate', 'run', 'certs'], `the Guide's commands: ${guide.join(' | ')}`);
  for (const line of guide) {
    if (line.startsWith('sidecar run ')) {
      const child = spawn('sh', ['-c', `exec ${line}`], { cwd: work, env, stdio: ['ignore', 'ignore', 'pipe'] });
      const exited = once(child, 'exit');
      const log: string[] = [];
      await new Promise<void>((resolve, reject) => {
        createInterface({ input: child.stderr! }).on('line', (l) => {
          log.push(l);
          if (l.includes('"sidecar ready"')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`${line} exited with ${code}:\n${log.join('\n')}`)));
      });
      child.kill('SIGTERM');
      t.same(await exited, [0, null], `${line}: ready, then a clean exit on SIGTERM`);
      continue;
    }
    const result = sh(line);
    t.equal(result.status, 0, `${line}: exit 0 ${result.stderr}`);
  }
  t.ok(existsSync(path.join(work, 'certs', 'server.crt')), 'certs written in the user\'s folder');

  // The Guide's TLS fragment, as written, names the files `sidecar certs` wrote.
  const fragment = parse(fences(section('Add TLS'), 'yaml')[0] ?? '') as { listeners: { tls: Record<string, string> }[] };
  const tlsYaml = Object.entries(fragment.listeners[0].tls).map(([k, v]) => `      ${k}: ${v}`).join('\n');
  writeFileSync(path.join(work, 'sidecar.yaml'), USER_CONFIG.replace('    address: 127.0.0.1:0\n', `    address: 127.0.0.1:0\n    tls:\n${tlsYaml}\n`));
  const tls = sh('sidecar validate sidecar.yaml');
  t.equal(tls.status, 0, `the TLS fragment validates, its files found ${tls.stderr}`);

  const schema = sh('sidecar schema');
  t.equal(schema.status, 0);
  t.match(JSON.parse(schema.stdout), { type: 'object' }, 'sidecar schema prints the JSON Schema');
  const version = sh('sidecar --version');
  t.equal(version.stdout.trim(), PACKAGE.version, 'sidecar --version');
});
