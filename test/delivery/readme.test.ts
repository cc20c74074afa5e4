/**
 * The README is part of the product: its first commands, its tables of codes, metrics,
 * admin endpoints and commands, its links and its configuration example are checked
 * against the code. (CI also runs its quick start: scripts/check-quickstart.sh.)
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Metrics, PrimaryMetrics } from '../../src/telemetry/metrics/metrics';
import { buildCli } from '../../src/cli';
import { formatConfigErrors, parseConfigText } from '../../src/config/load';
import { ERROR_STATUS, type ErrorCode } from '../../src/core/errors';
import { closedPort } from '../helpers/upstream';
import { simpleConfig, startSidecar } from '../helpers/sidecar';
import { EXAMPLES, ROOT } from '../helpers/examples';

const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const QUICKSTART_MARKER = '<!-- checked: scripts/check-quickstart.sh -->';

interface Fence {
  readonly lang: string;
  readonly body: string;
  /** Offset of the opening fence in the text. */
  readonly at: number;
}

function fences(text: string): Fence[] {
  return [...text.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1], body: m[2], at: m.index ?? 0 }));
}

/** The text of a `## Heading` section, up to the next `## `. */
function section(heading: string): string {
  const start = README.indexOf(`\n## ${heading}\n`);
  if (start < 0) return '';
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

t.test('the README opens with the two commands: run the demo, run the tests', async (t) => {
  const first = fences(README)[0];
  t.ok(first, 'a code block');
  const beforeIt = README.slice(0, first?.at ?? 0).trim();
  t.match(beforeIt, /^# \S+$/, 'nothing but the title before it');
  const commands = (first?.body ?? '').trim().split('\n').map((l) => l.replace(/\s+#.*$/, ''));
  t.same(commands, ['npm ci && npm start', 'npm ci && npm test'], 'exactly the two commands');
});

t.test('every error code is in the table with its status, and every 5xx has a troubleshooting entry', async (t) => {
  const table = section('Errors the sidecar answers itself');
  const troubleshooting = section('Troubleshooting');
  for (const [code, status] of Object.entries(ERROR_STATUS) as [ErrorCode, number][]) {
    t.match(table, new RegExp(`^\\| ${code} \\| ${status} \\|`, 'm'), `${code} ${status} in the table`);
    if (status >= 500) t.match(troubleshooting, `**${status} ${code}**`, `${code} explained in Troubleshooting`);
  }
});

t.test('every metric the sidecar exports is in the Metrics table', async (t) => {
  const table = section('Metrics');
  // The metrics of a process, and those the primary of a worker group adds.
  const names = [...new Set([new Metrics({ processMetrics: false }).registry, new PrimaryMetrics({ processMetrics: false }).registry].flatMap((r) => r.getMetricsAsArray().map((m) => m.name)))];
  t.ok(names.length >= 5, `${names.length} metrics`);
  for (const name of names) t.match(table, `| \`${name}\` |`, name);
});

t.test('every admin endpoint is in the Admin API table', async (t) => {
  const running = await startSidecar(simpleConfig(`http://127.0.0.1:${await closedPort()}`));
  t.teardown(() => running.close());
  const res = await fetch(`${running.adminUrl}/no-such-endpoint`);
  const body = (await res.json()) as { endpoints?: string[] };
  t.equal(res.status, 404, 'an unknown path lists the endpoints');
  const table = section('Admin API');
  for (const endpoint of body.endpoints ?? []) t.match(table, `| \`${endpoint}\` |`, endpoint);
});

t.test('every CLI command is in the CLI reference', async (t) => {
  const reference = fences(section('CLI'))[0]?.body ?? '';
  const commands = buildCli().commands.map((c) => c.name());
  t.ok(commands.length >= 4, `${commands.length} commands`);
  for (const name of commands) t.match(reference, new RegExp(`^sidecar ${name}\\b`, 'm'), `sidecar ${name}`);
});

t.test('the configuration examples in the README are valid configurations', async (t) => {
  // Complete files have top-level listeners and clusters; the guide's fragments do not.
  const configs = fences(README).filter((f) => f.lang === 'yaml' && /^listeners:/m.test(f.body) && /^clusters:/m.test(f.body));
  t.ok(configs.length >= 1, `${configs.length} complete configuration(s)`);
  for (const fence of configs) {
    const loaded = parseConfigText(fence.body, path.join(ROOT, 'README.yaml'));
    t.ok(loaded.ok, loaded.ok ? 'valid' : formatConfigErrors('README.md block', loaded.errors));
  }
});

t.test('the quick start block that CI runs is there', async (t) => {
  const at = README.indexOf(QUICKSTART_MARKER);
  t.ok(at > 0, 'the marker');
  const block = fences(README).find((f) => f.at > at);
  t.equal(block?.lang, 'sh', 'a sh block follows it');
  t.match(block?.body ?? '', /^curl .*localhost:8080\//m, 'it calls the sidecar');
});

t.test('relative links in the documentation point at files that exist', async (t) => {
  const docs = ['README.md', 'docs/CONFIGURATION.md', 'certs/README.md', 'examples/README.md', 'examples/docker-compose/README.md', 'examples/kubernetes/README.md', 'examples/host/README.md'];
  t.ok(existsSync(EXAMPLES));
  let checked = 0;
  for (const doc of docs) {
    const text = readFileSync(path.join(ROOT, doc), 'utf8');
    for (const m of text.matchAll(/\]\(([^)\s#]+)(#[^)]*)?\)/g)) {
      if (/^[a-z]+:/.test(m[1])) continue;
      checked++;
      t.ok(existsSync(path.join(ROOT, path.dirname(doc), m[1])), `${doc}: ${m[1]}`);
    }
  }
  t.ok(checked >= 15, `${checked} links`);
});
