import type { Server } from 'node:http';
import path from 'node:path';
import { runSidecar } from './main';

/**
 * `npm start`: the demo app on 127.0.0.1:3000 and the sidecar in front of it on :8080, as
 * examples/sidecar.yaml describes. The app is plain JavaScript in examples/app so that it
 * reads like any service a team would put behind the sidecar.
 */
const DEMO_APP_PORT = 3000;
const REPO_ROOT = path.join(__dirname, '..');

interface DemoAppModule {
  createDemoApp(): Server;
}

async function main(): Promise<void> {
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
