import type { Server } from 'node:http';
import path from 'node:path';
import { runSidecar } from './main';
import { ensureDemoCertificates } from './tls/certificates';

/**
 * `npm start`: the demo app on 127.0.0.1:3000 and the sidecar in front of it on :8080 (HTTP)
 * and :8443 (HTTPS), as examples/sidecar.yaml describes. The app is plain JavaScript in
 * examples/app so that it reads like any service a team would put behind the sidecar.
 */
const DEMO_APP_PORT = 3000;
const REPO_ROOT = path.join(__dirname, '..');
/** Where examples/sidecar.yaml expects its certificate (`../certs/server.crt`). */
const DEMO_CERTS_DIR = path.join(REPO_ROOT, 'certs');

interface DemoAppModule {
  createDemoApp(): Server;
}

async function main(): Promise<void> {
  // Private keys are never committed: the first start makes a local CA and a localhost
  // certificate; later starts reuse them (and any certificate put there instead).
  const certs = await ensureDemoCertificates(DEMO_CERTS_DIR);
  if (certs.generated) {
    process.stderr.write(`demo certificates written to ${path.relative(process.cwd(), DEMO_CERTS_DIR) || '.'}/ (clients trust ${path.relative(process.cwd(), certs.caCertPath)})\n`);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createDemoApp } = require(path.join(REPO_ROOT, 'examples', 'app', 'server.js')) as DemoAppModule;
  const app = createDemoApp();
  await new Promise<void>((resolve, reject) => {
    app.once('error', reject);
    app.listen(DEMO_APP_PORT, '127.0.0.1', () => resolve());
  });
  process.stderr.write(`demo app listening on http://127.0.0.1:${DEMO_APP_PORT}\n`);
  const configPath = process.env.SIDECAR_CONFIG ?? path.join(REPO_ROOT, 'examples', 'sidecar.yaml');
  const sidecar = await runSidecar(configPath);
  const ports = sidecar.listeners.map((l) => `${l.config.tls ? 'https' : 'http'}://localhost:${l.port}/`);
  process.stderr.write(`sidecar answering on ${ports.join(' and ')} (admin: http://127.0.0.1:${sidecar.admin.port}/metrics)\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`demo: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
