// @ts-check
'use strict';

// What matching a route regex costs: V8's RegExp (backtracking) against the RE2 engine the
// sidecar uses (re2js, src/config/route-regex.ts), per match on typical paths and on a 16 KiB
// path (the longest a default listener takes), then on the crafted path `/` + n × `a` + `!`
// against an ambiguous pattern, where V8's time doubles with each character and RE2's grows
// linearly.
// Usage: npm run build && node bench/route-regex.js [matchesPerPattern]

const { compileRouteRegex } = require('../dist/config/route-regex');

const MATCHES = Number(process.argv[2] ?? 500_000);
const PATTERNS = ['^/v[0-9]+/', '^/(slow|huge|leave)', '^/api/users/[0-9]+$', '\\.(png|jpe?g|css)$'];
const PATHS = ['/v1/users/42', '/api/users/42', '/static/app/main.css', `/docs/${'x'.repeat(200)}`];
const LONG_PATH = `/${'x'.repeat(16 * 1024 - 1)}`;
const AMBIGUOUS = '^/(a|a)*$';

/** Nanoseconds per call of `test` over `paths` in turn, after a warm-up. */
function nsPerMatch(test, paths, matches) {
  let hits = 0;
  for (let i = 0; i < 50_000; i++) if (test(paths[i % paths.length])) hits++;
  hits = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < matches; i++) if (test(paths[i % paths.length])) hits++;
  return { ns: Number(process.hrtime.bigint() - start) / matches, hits };
}

function ms(test, input) {
  const start = process.hrtime.bigint();
  test(input);
  return (Number(process.hrtime.bigint() - start) / 1e6).toFixed(2);
}

console.log(`ns per match: over ${PATHS.length} typical paths in turn (${MATCHES} matches), and on one 16 KiB path`);
console.log(`${'pattern'.padEnd(26)} ${'RegExp'.padStart(8)} ${'RE2'.padStart(8)} ${'RegExp 16K'.padStart(11)} ${'RE2 16K'.padStart(9)}`);
for (const pattern of PATTERNS) {
  const native = new RegExp(pattern);
  const re2 = compileRouteRegex(pattern);
  const row = [PATHS, [LONG_PATH]].flatMap((paths) => {
    const matches = paths === PATHS ? MATCHES : Math.ceil(MATCHES / 20);
    const a = nsPerMatch((s) => native.test(s), paths, matches);
    const b = nsPerMatch((s) => re2.test(s), paths, matches);
    if (a.hits !== b.hits) throw new Error(`${pattern}: the engines disagree (${a.hits} vs ${b.hits} matches)`);
    return [a.ns, b.ns];
  });
  const [a, b, c, d] = row.map((ns) => ns.toFixed(0));
  console.log(`${pattern.padEnd(26)} ${a.padStart(8)} ${b.padStart(8)} ${c.padStart(11)} ${d.padStart(9)}`);
}

console.log(`\n${AMBIGUOUS} on / + n × a + ! (ms for one match; the event loop is blocked meanwhile)`);
const native = new RegExp(AMBIGUOUS);
const re2 = compileRouteRegex(AMBIGUOUS);
for (let i = 0; i < 100; i++) native.test(`/${'a'.repeat(10)}!`) || re2.test(`/${'a'.repeat(10)}!`); // warm-up
for (const n of [16, 18, 20, 22]) {
  const input = `/${'a'.repeat(n)}!`;
  console.log(`n=${String(n).padEnd(6)} RegExp ${ms((s) => native.test(s), input).padStart(9)} ms   RE2 ${ms((s) => re2.test(s), input).padStart(7)} ms`);
}
for (const n of [28, 10_000, 16_000]) {
  const input = `/${'a'.repeat(n)}!`;
  console.log(`n=${String(n).padEnd(6)} RegExp ${'(skipped)'.padStart(9)}      RE2 ${ms((s) => re2.test(s), input).padStart(7)} ms`);
}
