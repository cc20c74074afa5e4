/**
 * examples/host: the systemd unit runs the route file of this folder (installed as
 * /etc/sidecar/sidecar.yaml) and gives the drain the time it needs.
 */
import t from 'tap';
import { execSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, compiledConfig, durationSeconds, flagValue } from '../helpers/examples';

const DIR = path.join('examples', 'host');
/** Seconds between the end of the drain and systemd's SIGKILL, at the least. */
const MIN_SHUTDOWN_MARGIN_SECONDS = 1;

/** `[Section]` → key → values (a key may repeat, as ExecStartPre does). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = new Map();
      sections.set(header[1], current);
      continue;
    }
    const eq = line.indexOf('=');
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

const unit = parseUnit(readFileSync(path.join(ROOT, DIR, 'sidecar.service'), 'utf8'));
const service = unit.get('Service') ?? new Map<string, string[]>();
const one = (key: string): string => (service.get(key) ?? [''])[0];
const execArgs = (key: string): string[] => one(key).split(/\s+/);

t.test('the unit runs `sidecar run -c` on the file this folder provides, validated first', async (t) => {
  t.ok(unit.has('Unit') && unit.has('Service') && unit.has('Install'), 'Unit, Service and Install sections');
  const start = execArgs('ExecStart');
  t.equal(start[0], '/usr/bin/node', 'an absolute interpreter path (systemd needs one)');
  t.match(start[1], /\/dist\/cli\.js$/, 'the CLI of the installed build');
  t.equal(start[2], 'run', 'the run command');
  const configPath = flagValue(start, '-c', '--config') ?? '';
  t.equal(path.basename(configPath), 'sidecar.yaml', `-c ${configPath}: the name of examples/host/sidecar.yaml`);
  const pre = execArgs('ExecStartPre');
  t.same(pre.slice(2), ['validate', configPath], 'ExecStartPre validates the same file');
  t.equal(execArgs('ExecStartPost')[2], 'wait-ready', 'started once ready');
  t.match(one('ExecReload'), /kill -HUP \$MAINPID/, 'reload is SIGHUP');
  const readme = readFileSync(path.join(ROOT, DIR, 'README.md'), 'utf8');
  t.match(readme, `cp examples/host/sidecar.yaml ${path.dirname(configPath)}/`, 'the README installs the route file where -c reads it');
  t.match(readme, 'cp examples/host/sidecar.service /etc/systemd/system/', 'the README installs the unit');
});

t.test('the unit runs as a system user and gives the drain its time', async (t) => {
  t.not(one('User'), '', 'User is set');
  t.not(one('User'), 'root', 'not root');
  t.equal(one('KillSignal'), 'SIGTERM', 'SIGTERM starts the drain');
  const config = await compiledConfig(path.join(DIR, 'sidecar.yaml'));
  const stop = durationSeconds(one('TimeoutStopSec'));
  const drain = (config.drain.delayMs + config.drain.timeoutMs) / 1000;
  t.ok(stop >= drain + MIN_SHUTDOWN_MARGIN_SECONDS, `TimeoutStopSec ${stop}s >= drain ${drain}s + margin`);
  t.equal(config.admin.host, '127.0.0.1', 'the admin API stays on loopback on a host');
});

t.test('the certificate commands of the README work as written (into a scratch folder) and give what the route file reads', async (t) => {
  const readme = readFileSync(path.join(ROOT, DIR, 'README.md'), 'utf8');
  const yaml = readFileSync(path.join(ROOT, DIR, 'sidecar.yaml'), 'utf8');
  const certs = /^sudo (node \/opt\/sidecar\/dist\/cli\.js certs --out \/etc\/sidecar\/tls --host "\$\(hostname -f\)")$/m.exec(readme);
  if (certs === null) throw new Error('the README has no certs command');
  t.match(yaml, `# sudo ${certs[1]}`, 'the route file\'s comment gives the same command');
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'sidecar-host-'));
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
  const etc = path.join(scratch, 'etc', 'sidecar');
  mkdirSync(etc, { recursive: true });
  const command = certs[1].replace('node /opt/sidecar/dist/cli.js', `"${process.execPath}" "${path.join(ROOT, 'dist', 'cli.js')}"`).replace('/etc/sidecar', etc);
  execSync(command, { cwd: scratch, stdio: 'pipe', shell: '/bin/sh' });
  writeFileSync(path.join(etc, 'sidecar.yaml'), yaml);
  for (const name of ['tls/server.crt', 'tls/server.key', 'tls/ca.crt']) t.ok(existsSync(path.join(etc, name)), `${name} written`);
  t.ok(/cert: tls\/server\.crt/.test(yaml) && /key: tls\/server\.key/.test(yaml), 'the names the route file reads');
  const mode = statSync(path.join(etc, 'tls', 'server.key')).mode & 0o777;
  t.equal(mode & 0o077, 0, 'the key is private until the README grants the group');
  const validate = spawnSync(process.execPath, [path.join(ROOT, 'dist', 'cli.js'), 'validate', path.join(etc, 'sidecar.yaml')], { cwd: scratch, encoding: 'utf8' });
  t.equal(validate.status, 0, `validate of the installed file passes: ${validate.stdout}${validate.stderr}`);
});
