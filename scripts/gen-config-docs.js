#!/usr/bin/env node
'use strict';
/**
 * Writes the files generated from the configuration schema (src/config/schema.ts):
 *   docs/CONFIGURATION.md   the configuration reference
 *   sidecar.schema.json     the JSON Schema editors use (yaml-language-server modeline)
 *
 *   npm run docs                              build, then write both files
 *   node scripts/gen-config-docs.js --check   exit 1 and name the stale files instead of writing
 *
 * It reads the compiled code in dist/ (run `npm run build` first; `npm run docs` does).
 */
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const { renderConfigReference, renderJsonSchemaFile, DOCS_COMMAND } = require(path.join(ROOT, 'dist', 'config', 'reference.js'));

const GENERATED = [
  { file: path.join('docs', 'CONFIGURATION.md'), render: renderConfigReference },
  { file: 'sidecar.schema.json', render: renderJsonSchemaFile },
];

const check = process.argv.includes('--check');
const stale = [];
for (const { file, render } of GENERATED) {
  const target = path.join(ROOT, file);
  const fresh = render();
  const current = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : undefined;
  if (current === fresh) continue;
  if (check) {
    stale.push(file);
  } else {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, fresh);
    process.stdout.write(`wrote ${file}\n`);
  }
}
if (stale.length > 0) {
  process.stderr.write(`out of date: ${stale.join(', ')}; run \`${DOCS_COMMAND}\` and commit the result\n`);
  process.exitCode = 1;
}
