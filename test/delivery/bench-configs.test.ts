/**
 * bench/sidecar-configs.js: every sidecar row of `npm run bench` runs a config the loader
 * accepts, and that config turns on exactly the features its row claims (a renamed schema
 * field would otherwise make a row quietly measure something else).
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatConfigErrors, loadConfigFile } from '../../src/config/load';
import { makeTestPki } from '../helpers/certs';

interface SidecarVariant {
  readonly summary: string;
  readonly accessLog: boolean;
  readonly sampleRatio: number | undefined;
  readonly retries: boolean;
  readonly breaker: boolean;
  readonly tls: boolean;
  readonly workers: number;
  readonly rateLimit?: boolean;
  readonly recorder: boolean;
}

interface BenchConfigs {
  readonly SIDECAR_VARIANTS: Readonly<Record<string, SidecarVariant>>;
  sidecarConfigYaml(
    variant: SidecarVariant,
    inputs: { port: number; adminPort: number; upstream: string; otlpEndpoint: string; accessLogPath: string; certDir: string },
  ): string;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { SIDECAR_VARIANTS, sidecarConfigYaml } = require('../../bench/sidecar-configs') as BenchConfigs;

const SINK = 'http://127.0.0.1:4318';

t.test('the product row has every feature the headline target names, on one pinned process', async (t) => {
  const product = SIDECAR_VARIANTS.sidecar;
  t.ok(product, 'a row named sidecar');
  t.same(
    { accessLog: product.accessLog, sampleRatio: product.sampleRatio, retries: product.retries, breaker: product.breaker, tls: product.tls, workers: product.workers },
    { accessLog: true, sampleRatio: 0.01, retries: true, breaker: true, tls: false, workers: 1 },
  );
  t.equal(SIDECAR_VARIANTS['sidecar-bare']?.accessLog, false, 'sidecar-bare logs nothing');
  t.equal(SIDECAR_VARIANTS['sidecar-bare']?.sampleRatio, undefined, 'sidecar-bare does not trace');
});

t.test('every sidecar row loads, with the features it claims', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-configs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await makeTestPki(path.join(dir, 'certs'));
  for (const [name, variant] of Object.entries(SIDECAR_VARIANTS)) {
    const accessLogPath = path.join(dir, `${name}-access.log`);
    const text = sidecarConfigYaml(variant, { port: 18085, adminPort: 18901, upstream: 'http://127.0.0.1:18080', otlpEndpoint: SINK, accessLogPath, certDir: 'certs' });
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(file, text);
    const loaded = await loadConfigFile(file);
    if (!loaded.ok) {
      t.fail(`${name}: ${formatConfigErrors(file, loaded.errors)}`);
      continue;
    }
    const { config } = loaded;
    const listener = config.listeners[0];
    const route = listener?.routes[0];
    t.equal(config.accessLog.path, variant.accessLog ? accessLogPath : 'off', `${name}: access log`);
    t.equal(config.tracing.exporter, variant.sampleRatio === undefined ? 'none' : 'otlp-http', `${name}: exporter`);
    if (variant.sampleRatio !== undefined) {
      t.equal(config.tracing.sampleRatio, variant.sampleRatio, `${name}: sample ratio`);
      t.equal(config.tracing.endpoint, SINK, `${name}: exports to the sink`);
    }
    t.equal(route?.action === 'cluster' ? route.retry.attempts : undefined, variant.retries ? 2 : 0, `${name}: retries`);
    const document = config.document as { clusters?: Array<{ circuitBreaker?: unknown }> };
    t.equal(document.clusters?.[0]?.circuitBreaker !== undefined, variant.breaker, `${name}: circuitBreaker section`);
    t.equal(listener?.tls !== undefined, variant.tls, `${name}: TLS`);
    t.equal(config.workers, variant.workers, `${name}: workers`);
    t.equal(route?.action === 'cluster' ? route.rateLimit?.key.kind : undefined, variant.rateLimit === true ? 'route' : undefined, `${name}: rate limit`);
  }
});
