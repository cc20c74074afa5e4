// @ts-check
'use strict';

// What writing access-log lines costs: the sidecar's LineWriter (src/telemetry/line-writer.ts)
// against sonic-boom (installed with pino) set up the same way: 64 KiB batches
// (`minLength`), a flush every 250 ms (`periodicFlush`), asynchronous writes. Each runs in a
// child process of its own; a writer that cannot keep up drops lines (both bound their buffer
// to 16 MiB, sonic-boom through maxLength), so the CPU figures (process.cpuUsage: every thread, libuv's
// pool included) are its alone.
//   burst: N lines of 363 bytes (40 000 by default: below both 16 MiB buffers, so none is dropped), 200 per event-loop turn (a busy proxy), then flush: lines/s
//          and CPU ms per 100 000 lines.
//   paced: 5 000 lines/s for 2 s, 50 per 10 ms (a steady proxy): CPU % of one core.
// Usage: npm run build && node bench/line-writer.js [burstLines]

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const LINES = Number(process.argv[2] ?? 40_000);
const LINE = JSON.stringify({
  time: '2026-05-01T12:03:04.567Z', level: 'info', msg: 'request', listener: 'ingress', route: 'api', cluster: 'app',
  method: 'GET', path: '/api/orders/42', status: 200, duration_ms: 1.234, upstream_ms: 0.987, bytes_in: 0, bytes_out: 1234,
  request_id: '17e64dc7-6bf1-4cc1-8195-0d788b4bad28', attempts: 1, flags: '-', trace_id: '0fabb71ff6b95f5b9fd34acdc7b4eb5d',
}) + '\n';

/** @param {string} kind @param {string} file */
function openWriter(kind, file) {
  if (kind === 'line-writer') {
    const { LineWriter } = require('../dist/telemetry/line-writer');
    const writer = LineWriter.open(file);
    return { write: (/** @type {string} */ s) => writer.write(s), end: () => writer.close() };
  }
  const SonicBoom = require('sonic-boom');
  const boom = new SonicBoom({ dest: file, minLength: 64 * 1024, maxWrite: 128 * 1024, periodicFlush: 250, maxLength: 16 * 1024 * 1024, sync: false, mkdir: false });
  return {
    write: (/** @type {string} */ s) => void boom.write(s),
    end: () => new Promise((resolve) => { boom.once('close', resolve); boom.end(); }),
  };
}

/** @param {string} kind @param {string} mode @param {string} file */
async function child(kind, mode, file) {
  const writer = openWriter(kind, file);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let written = 0;
  if (mode === 'burst') {
    while (written < LINES) {
      for (let i = 0; i < 200 && written < LINES; i++, written++) writer.write(LINE);
      await new Promise((resolve) => setImmediate(resolve));
    }
  } else {
    const end = Date.now() + 2000;
    while (Date.now() < end) {
      for (let i = 0; i < 50; i++, written++) writer.write(LINE);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  await writer.end();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const bytes = fs.statSync(file).size;
  process.stdout.write(JSON.stringify({ written, seconds, cpuMs, inFile: bytes / Buffer.byteLength(LINE) }));
}

function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'line-writer-bench-'));
  console.log(`node ${process.version}, ${os.cpus().length} CPUs, line ${Buffer.byteLength(LINE)} bytes, burst ${LINES} lines`);
  console.log('writer        mode    lines/s      CPU ms/100k lines   CPU % of a core   lines in the file');
  for (const mode of ['burst', 'paced']) {
    for (const kind of ['line-writer', 'sonic-boom']) {
      const file = path.join(dir, `${kind}-${mode}.log`);
      const run = spawnSync(process.execPath, [__filename, String(LINES), '--child', kind, mode, file], { encoding: 'utf8' });
      if (run.status !== 0) throw new Error(`${kind} ${mode}: ${run.stderr}`);
      const r = JSON.parse(run.stdout);
      const rate = Math.round(r.written / r.seconds);
      const perLines = (r.cpuMs / r.written) * 100_000;
      const share = (r.cpuMs / (r.seconds * 1000)) * 100;
      console.log(`${kind.padEnd(13)} ${mode.padEnd(7)} ${String(rate).padStart(9)}   ${perLines.toFixed(0).padStart(17)}   ${share.toFixed(1).padStart(15)}   ${r.inFile === r.written ? 'all' : `${r.inFile} (${r.written - r.inFile} dropped)`}`);
      fs.rmSync(file);
    }
  }
  fs.rmSync(dir, { recursive: true });
}

if (process.argv[3] === '--child') child(process.argv[4], process.argv[5], process.argv[6]).catch((e) => { console.error(e); process.exit(1); });
else main();
