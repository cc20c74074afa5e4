/**
 * The layers of src/ point one way (.dependency-cruiser.cjs, docs/ARCHITECTURE.md "Layers"):
 * dependency-cruiser finds no import that points up a layer, no cycle between folders and no
 * run-time cycle between modules. The rules themselves are checked on a small tree that
 * breaks each of them, so a rule that stopped matching would not pass silently.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');
const CONFIG = path.join(ROOT, '.dependency-cruiser.cjs');
const DEPCRUISE = path.join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

interface Violation {
  readonly rule: { readonly name: string; readonly severity: string };
  readonly from: string;
  readonly to: string;
  readonly cycle?: readonly ({ readonly name: string } | string)[];
}

interface CruiseResult {
  readonly summary: { readonly violations: readonly Violation[]; readonly totalCruised: number };
}

/** Runs the CLI as `npm run lint:layers` does, on `cwd`'s src/, and returns its JSON report. */
function cruise(cwd: string): Promise<CruiseResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [DEPCRUISE, 'src', '--config', CONFIG, '--output-type', 'json'],
      { cwd, maxBuffer: 64 * 1024 * 1024 },
      // The CLI exits non-zero when it finds violations; the report is on stdout either way.
      (error, stdout, stderr) => {
        try {
          resolve(JSON.parse(stdout) as CruiseResult);
        } catch {
          reject(new Error(`dependency-cruiser gave no report (${error?.message ?? 'no error'}): ${stderr}`));
        }
      },
    );
  });
}

function describe(v: Violation): string {
  const cycle = v.cycle === undefined ? '' : ` (cycle: ${[v.from, ...v.cycle.map((c) => (typeof c === 'string' ? c : c.name))].join(' → ')})`;
  return `${v.rule.name}: ${v.from} → ${v.to}${cycle}`;
}

/** A tree that breaks each rule once, beside imports the rules allow. */
const BROKEN_TREE: Readonly<Record<string, string>> = {
  'tsconfig.json': JSON.stringify({ compilerOptions: { module: 'node16', moduleResolution: 'node16', strict: true } }),
  // Allowed: down a layer, and type-only cycles within a folder.
  'src/core/leaf.ts': 'export const leaf = 1;\n',
  'src/admin/down.ts': "import { leaf } from '../core/leaf';\nexport const down = leaf;\n",
  'src/pipeline/typed-a.ts': "import type { B } from './typed-b';\nexport interface A { b?: B }\n",
  'src/pipeline/typed-b.ts': "import type { A } from './typed-a';\nexport interface B { a?: A }\n",
  // Up a layer (core → admin), which is also a cycle between the two folders.
  'src/core/up.ts': "import { down } from '../admin/down';\nexport const up = down;\n",
  'src/admin/back.ts': "import { up } from '../core/up';\nexport const back = up;\n",
  // Two modules that require each other at run time.
  'src/proxy/ping.ts': "import { pong } from './pong';\nexport const ping = (): number => pong();\n",
  'src/proxy/pong.ts': "import { ping } from './ping';\nexport const pong = (): number => ping();\n",
  // A folder that is in no layer, importing and imported.
  'src/stray/thing.ts': "import { leaf } from '../core/leaf';\nexport const thing = leaf;\n",
  'src/cli.ts': "import { thing } from './stray/thing';\nexport const cli = thing;\n",
};

async function writeTree(files: Readonly<Record<string, string>>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sidecar-layers-'));
  for (const [file, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
    await writeFile(path.join(dir, file), text);
  }
  return dir;
}

// Both cruises start at once: each spends most of its time starting up and parsing.
const brokenTree = writeTree(BROKEN_TREE);
const ofSrc = cruise(ROOT);
const ofBrokenTree = brokenTree.then(cruise);
// A failure is reported by the subtest that awaits it, not as an unhandled rejection before.
for (const pending of [ofSrc, ofBrokenTree]) pending.catch(() => undefined);
t.teardown(async () => rm(await brokenTree, { recursive: true, force: true }));

t.test('src/ keeps its layers: no upward import, no folder cycle, no run-time cycle', async (t) => {
  const result = await ofSrc;
  t.ok(result.summary.totalCruised > 100, `${result.summary.totalCruised} modules cruised`);
  const violations = result.summary.violations.map(describe);
  t.same(violations, [], violations.length === 0 ? 'no violations' : `violations:\n${violations.join('\n')}`);
});

t.test('each rule catches what it is about', async (t) => {
  const violations = (await ofBrokenTree).summary.violations;
  const found = violations.map(describe);
  const has = (rule: string, from: string, to: string): boolean => violations.some((v) => v.rule.name === rule && v.from === from && v.to === to);
  t.ok(has('layer-core', 'src/core/up.ts', 'src/admin/down.ts'), `an upward import is reported:\n${found.join('\n')}`);
  t.ok(violations.some((v) => v.rule.name === 'no-folder-cycle'), 'the core ⇄ admin folder cycle is reported');
  t.ok(violations.some((v) => v.rule.name === 'no-runtime-cycle' && v.from.startsWith('src/proxy/')), 'the ping ⇄ pong run-time cycle is reported');
  t.ok(has('in-a-layer', 'src/stray/thing.ts', 'src/core/leaf.ts'), 'a module outside the layers is reported (its imports)');
  t.ok(has('to-a-layer', 'src/cli.ts', 'src/stray/thing.ts'), 'a module outside the layers is reported (its importers)');
  t.notOk(
    violations.some((v) => v.from.startsWith('src/pipeline/') || v.from === 'src/admin/down.ts'),
    'imports down a layer and type-only cycles are allowed',
  );
  t.ok(violations.every((v) => v.rule.severity === 'error'), 'every rule is an error, not a warning');
});
