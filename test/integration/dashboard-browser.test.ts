import t, { type Test } from 'tap';
import { chromium, type Browser, type Page } from 'playwright-core';
import { request } from 'undici';
import { startSidecar } from '../helpers/sidecar';
import { startUpstream } from '../helpers/upstream';

// Headless Chromium (Debian's package, installed by .ci/run) driven by playwright-core.
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Set to a file path (e.g. docs/dashboard.png) to write the screenshot the README shows. */
const SCREENSHOT = process.env.SIDECAR_DASHBOARD_SCREENSHOT;

function config(appUrl: string, adminExtra = ''): string {
  return `
admin: { address: 127.0.0.1:0${adminExtra} }
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes:
      - name: ping
        match: { path: /sidecar-ping }
        directResponse: { status: 200, body: pong }
      - name: api
        match: { prefix: /api, methods: [GET, POST] }
        cluster: app
        timeout: 5s
        retry: { attempts: 1, backoff: { base: 1ms, max: 2ms } }
      - name: web
        match: { prefix: / }
        cluster: static
clusters:
  - name: app
    endpoints: [{ url: ${appUrl} }]
    circuitBreaker: { volumeThreshold: 4, errorThresholdPercentage: 50, window: 10s, resetTimeout: 1m }
  - name: static
    endpoints: [{ url: ${appUrl} }]
`;
}

async function launch(t: Test): Promise<{ browser: Browser; page: Page; problems: string[] }> {
  // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));
  return { browser, page, problems };
}

t.test('the dashboard loads without a console error, shows routes and clusters, and the breaker opening within 3 s', async (t) => {
  let failing = false;
  const app = await startUpstream((_req, res) => {
    res.statusCode = failing ? 503 : 200;
    res.end(failing ? 'down' : 'ok');
  });
  const proxy = await startSidecar(config(app.url));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  for (const path of ['/api/a', '/api/b', '/index.html']) await (await request(`${proxy.url()}${path}`)).body.dump();
  const { page, problems } = await launch(t);
  await page.goto(`${proxy.adminUrl}/`);
  await page.waitForSelector('#routes tbody tr[data-route="api"]');
  const routes = await page.$$eval('#routes tbody tr', (rows) => rows.map((r) => r.getAttribute('data-route')));
  t.same(routes, ['ping', 'api', 'web'], 'every route, in order');
  t.match(await page.textContent('#routes tbody tr[data-route="api"]'), /prefix \/api · GET,POST.*cluster app.*timeout 5s · retry 1/);
  t.equal(await page.textContent('#clusters tbody tr[data-cluster="app"] td[data-breaker]'), 'closed');
  t.ok(await page.isVisible('#clusters tbody tr[data-cluster="static"]'));
  t.notOk(await page.isVisible('#login'), 'no token prompt without admin.token');

  failing = true;
  for (let i = 0; i < 6; i++) await (await request(`${proxy.url()}/api/fail-${i}`)).body.dump();
  const failedAt = performance.now();
  await page.waitForSelector('#clusters tbody tr[data-cluster="app"] td[data-breaker="open"]', { timeout: 3000 });
  t.ok(performance.now() - failedAt < 3000, 'the page shows the breaker open within 3 s, without a reload');
  await page.waitForSelector('#errors tbody tr');
  const link = await page.getAttribute('#errors tbody tr a', 'href');
  t.match(link, /^\/requests\/[0-9a-f-]+$/, 'the last errors link to the recorder');
  const detail = await request(`${proxy.adminUrl}${link}`);
  t.equal(detail.statusCode, 200, 'and the link resolves');
  await detail.body.dump();
  t.ok((await page.$$('#charts figure')).length >= 2, 'a chart per route with traffic');
  if (SCREENSHOT !== undefined) await page.screenshot({ path: SCREENSHOT, fullPage: true });

  // Phone width: nothing wider than the screen but the tables' own scroll boxes.
  await page.setViewportSize({ width: 375, height: 800 });
  const overflow = (await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth')) as number;
  t.ok(overflow <= 0, `no sideways scroll of the page at 375px (${overflow}px)`);
  t.same(problems, [], 'no console error');
});

t.test('per route, the charts draw requests/s and 5xx share, and the p50 and p99 latency, with the last values in words', async (t) => {
  // 30 ms for the app's answer: the route's p50 and p99 are in the 25-50 ms bucket.
  const app = await startUpstream((_req, res) => {
    setTimeout(() => res.end('ok'), 30);
  });
  const proxy = await startSidecar(config(app.url));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  for (let i = 0; i < 8; i++) await (await request(`${proxy.url()}/api/slow-${i}`)).body.dump();
  const stats = (await (await request(`${proxy.adminUrl}/stats`)).body.json()) as { routes: Array<{ route: string; p50Ms: number; p99Ms: number }> };
  const api = stats.routes.find((r) => r.route === 'api');
  t.ok(api !== undefined && api.p50Ms >= 25 && api.p50Ms <= 50, `/stats has the route's p50 (${api?.p50Ms} ms)`);
  t.ok(api !== undefined && api.p99Ms >= api.p50Ms, 'p99 is not below p50');
  const { page, problems } = await launch(t);
  await page.goto(`${proxy.adminUrl}/`);

  const figure = 'figure[data-route="ingress/api"]';
  await page.waitForSelector(`${figure} [data-chart="latency"] canvas`);
  t.same(await page.$$eval('#charts figure', (boxes) => boxes.map((b) => b.getAttribute('data-route'))), ['ingress/api'], 'a figure for the route with traffic only');
  t.same(await page.$$eval(`${figure} [data-chart]`, (plots) => plots.map((p) => p.getAttribute('data-chart'))), ['traffic', 'latency'], 'traffic and latency, side by side');
  const labels = await page.$$eval(`${figure} [data-chart="latency"] .u-legend .u-label`, (cells) => cells.map((c) => c.textContent));
  t.ok(labels.includes('p50 ms') && labels.includes('p99 ms'), `the latency chart's legend names p50 and p99 (${labels.join(', ')})`);
  const trafficLabels = await page.$$eval(`${figure} [data-chart="traffic"] .u-legend .u-label`, (cells) => cells.map((c) => c.textContent));
  t.ok(trafficLabels.includes('req/s') && trafficLabels.includes('5xx %'), `the traffic chart's legend (${trafficLabels.join(', ')})`);

  // The p50 line is drawn: the latency canvas holds pixels of its colour (#0b6b2b); the
  // traffic canvas, drawn in other colours, holds none (the count does not see axes or grid).
  const p50Pixels = (chart: string): string => `(() => {
    const canvas = document.querySelector(${JSON.stringify(`${figure} [data-chart="${chart}"] canvas`)});
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let count = 0;
    for (let i = 0; i < pixels.length; i += 4) {
      if (pixels[i + 3] > 200 && Math.abs(pixels[i] - 0x0b) < 40 && Math.abs(pixels[i + 1] - 0x6b) < 40 && Math.abs(pixels[i + 2] - 0x2b) < 40) count++;
    }
    return count;
  })()`;
  await page.waitForFunction(`${p50Pixels('latency')} > 20`, undefined, { timeout: 5000 });
  t.ok(((await page.evaluate(p50Pixels('latency'))) as number) > 20, 'the p50 line is drawn');
  t.equal(await page.evaluate(p50Pixels('traffic')), 0, 'not in the traffic chart');

  const caption = (await page.textContent(`${figure} figcaption`)) ?? '';
  const p50 = /p50 ([\d.]+) ms/.exec(caption);
  t.ok(p50 !== null, `the caption states p50 (${caption})`);
  t.equal(Number(p50?.[1]), Math.round(api?.p50Ms ?? -1), "the caption's p50 is the route's p50 in /stats");
  t.match(caption, /p99 [\d.]+ ms/);
  t.match(caption, /0% 5xx/);
  t.match(await page.textContent('#routes tbody tr[data-route="api"]'), new RegExp(`${Math.round(api?.p50Ms ?? -1)} ms`), 'the routes table has the p50 too');
  t.same(problems, [], 'no console error');
});

t.test('with admin.token the page shows nothing until the token is given', async (t) => {
  const app = await startUpstream((_req, res) => res.end('ok'));
  const proxy = await startSidecar(config(app.url, ', token: s3cret-token'));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  const { page, problems } = await launch(t);
  await page.goto(`${proxy.adminUrl}/`);
  await page.waitForSelector('#login:not([hidden])');
  t.notOk(await page.isVisible('#dashboard'));
  t.equal(await page.$$eval('#routes tbody tr', (rows) => rows.length), 0, 'no route was read');
  t.notOk((await page.content()).includes('cluster app'), 'nothing of the config is in the page');
  t.equal(await page.getAttribute('#token', 'type'), 'password');
  t.equal(await page.textContent('label[for="token"]'), 'Admin token', 'the field is labelled');

  await page.fill('#token', 'wrong');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#login-error:text("that token was refused")');
  t.notOk(await page.isVisible('#dashboard'));

  await page.fill('#token', 's3cret-token');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#routes tbody tr[data-route="api"]');
  t.ok(await page.isVisible('#dashboard'));
  t.notOk(await page.isVisible('#login'));
  // The admin API answered 401 to the reads before the token: the browser logs those loads, nothing else.
  t.same(problems.filter((p) => !p.includes('401')), [], 'no other console error');
});
