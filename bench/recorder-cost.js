const http = require('node:http');
const { Pool } = require('undici');
const { parseConfigText } = require('../dist/config/load');
const { Sidecar } = require('../dist/sidecar');
async function main() {
  const app = http.createServer((req, res) => res.end('{"ok":true}'));
  await new Promise((r) => app.listen(0, '127.0.0.1', r));
  const appUrl = `http://127.0.0.1:${app.address().port}`;
  const make = async (recorder) => {
    const yaml = `admin: { address: 127.0.0.1:0${recorder ? '' : ', recorder: false'} }\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - { name: all, match: { prefix: / }, cluster: app }\nclusters:\n  - name: app\n    endpoints: [{ url: ${appUrl} }]\naccessLog: { path: off }\ntracing: { exporter: none }\n`;
    const c = parseConfigText(yaml, '/tmp/x.yaml');
    if (!c.ok) throw new Error(JSON.stringify(c.errors));
    const s = await Sidecar.start(c.config, { processMetrics: false });
    return { s, pool: new Pool(`http://127.0.0.1:${s.listenerPort('main')}`, { connections: 8 }) };
  };
  const off = await make(false), on = await make(true);
  const run = async (p, n) => {
    const t0 = process.cpuUsage(); const w0 = performance.now(); let i = 0;
    await Promise.all(Array.from({ length: 8 }, async () => { while (i++ < n) { const r = await p.pool.request({ path: '/x', method: 'GET', headers: { 'user-agent': 'bench', accept: '*/*', authorization: 'Bearer x' } }); await r.body.dump(); } }));
    const c = process.cpuUsage(t0); return { cpuUsPerReq: (c.user + c.system) / n, wallMs: performance.now() - w0 };
  };
  await run(off, 2000); await run(on, 2000);
  const res = { off: [], on: [] };
  for (let k = 0; k < 7; k++) { res.off.push((await run(off, 5000)).cpuUsPerReq); res.on.push((await run(on, 5000)).cpuUsPerReq); }
  const med = (a) => a.slice().sort((x, y) => x - y)[3];
  console.log('cpu µs/request (whole process: client, sidecar and app) off', res.off.map(Math.round), 'on', res.on.map(Math.round), 'median off', med(res.off).toFixed(1), 'on', med(res.on).toFixed(1), 'ratio', (med(res.on) / med(res.off)).toFixed(3));
  await off.pool.close(); await on.pool.close(); await off.s.stop({ graceful: false }); await on.s.stop({ graceful: false }); app.close();
}
main();
