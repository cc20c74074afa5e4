/**
 * The main module of a worker process (`workers` >= 2; the primary forks it with
 * node:cluster). It waits for the config from the primary, starts tracing, then the proxy
 * (listeners shared through node:cluster, no admin listener), and does what the primary asks:
 * apply a config, answer an admin query, drain. It never reads the config file itself.
 */
import { freezeSnapshot } from '../config/load';
import type { SidecarConfig } from '../config/types';
import { routeProcessWarnings } from '../lifecycle/process-warnings';
import { installCrashGuards } from '../lifecycle/crash-guards';
import type { Sidecar } from '../sidecar';
import { createProcessLogger, type Logger } from '../telemetry/logger';
import { isPrimaryMessage, WORKER_ID_ENV, type ApplyAnswer, type BoundListener, type PrimaryMessage, type WorkerMessage, type WorkerQuery } from './protocol';

const workerId = Number(process.env[WORKER_ID_ENV] ?? 0);
const logger = createProcessLogger().child({ worker: workerId });
installCrashGuards(logger);
routeProcessWarnings(logger);

// The primary orders the drain (after drain.delay, with /ready already 503). A Ctrl-C in a
// terminal reaches every process of the group, and systemd's default KillMode signals all
// of them: a worker that stopped on its own would refuse connections before the load
// balancers were told. SIGHUP (reload) is the primary's too.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => logger.debug({ signal }, 'signal ignored: the primary coordinates reloads and the drain'));
}

let sidecar: Sidecar | undefined;
let draining = false;

function send(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined || !process.connected) {
      resolve();
      return;
    }
    // A closed channel means the primary is gone: node:cluster ends this process then.
    process.send(message, undefined, {}, () => resolve());
  });
}

async function start(config: SidecarConfig): Promise<void> {
  try {
    // As in the single process: OpenTelemetry starts before node:http and undici are loaded.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { startTracing } = require('../telemetry/otel') as typeof import('../telemetry/otel');
    const tracing = startTracing(config, { global: true, logger });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Sidecar: SidecarClass } = require('../sidecar') as typeof import('../sidecar');
    sidecar = await SidecarClass.start(config, {
      logger,
      tracing,
      sharedAccessLog: true,
      adminListener: false,
    });
  } catch (error) {
    await send({ kind: 'start-failed', error: error instanceof Error ? error.message : String(error) });
    process.exit(1);
  }
  if (draining) return;
  await send({ kind: 'ready', sha256: config.sha256, listeners: boundListeners(sidecar) });
}

function boundListeners(running: Sidecar): BoundListener[] {
  return running.listeners.map((l) => ({ name: l.config.name, host: l.config.host, port: l.port }));
}

async function apply(config: SidecarConfig): Promise<ApplyAnswer> {
  if (sidecar === undefined) return { ok: false, error: 'the worker is still starting', errors: [{ path: '', line: undefined, message: 'the worker is still starting' }] };
  const result = await sidecar.applyConfig(config);
  return result.ok ? { ok: true, sha256: sidecar.config.sha256, changes: result.changes, listeners: boundListeners(sidecar) } : { ok: false, error: result.error, errors: result.errors };
}

async function answerQuery(query: WorkerQuery): Promise<unknown> {
  if (sidecar === undefined) throw new Error('the worker is still starting');
  switch (query) {
    case 'metrics':
      return sidecar.metrics.registry.getMetricsAsJSON();
    case 'stats':
      return sidecar.stats();
    case 'clusters':
      return sidecar.clustersView();
    case 'config':
      return sidecar.configView();
  }
}

async function answerRecorder(message: Extract<PrimaryMessage, { kind: 'requests' | 'request' }>): Promise<unknown> {
  if (sidecar === undefined) throw new Error('the worker is still starting');
  if (message.kind === 'requests') return sidecar.recording.list(message.filter);
  return (await sidecar.recording.get(message.requestId)) ?? null;
}

async function drain(timeoutMs: number): Promise<void> {
  if (draining) return;
  draining = true;
  if (sidecar === undefined) process.exit(0);
  const report = await sidecar.drain({ delayMs: 0, timeoutMs });
  await send({ kind: 'drained', ...report });
  process.exit(0);
}

function handle(message: PrimaryMessage, log: Logger): void {
  switch (message.kind) {
    case 'start':
      void start(freezeSnapshot(message.config));
      return;
    case 'apply':
      void apply(freezeSnapshot(message.config)).then(
        (value) => send({ kind: 'answer', id: message.id, value }),
        (error: unknown) => send({ kind: 'answer-error', id: message.id, error: String(error) }),
      );
      return;
    case 'query':
      void answerQuery(message.query).then(
        (value) => send({ kind: 'answer', id: message.id, value }),
        (error: unknown) => send({ kind: 'answer-error', id: message.id, error: error instanceof Error ? error.message : String(error) }),
      );
      return;
    case 'requests':
    case 'request':
      void answerRecorder(message).then(
        (value) => send({ kind: 'answer', id: message.id, value }),
        (error: unknown) => send({ kind: 'answer-error', id: message.id, error: error instanceof Error ? error.message : String(error) }),
      );
      return;
    case 'drain':
      void drain(message.timeoutMs).catch((error: unknown) => {
        log.error({ err: error }, 'drain failed');
        process.exit(1);
      });
      return;
  }
}

process.on('message', (message: unknown) => {
  if (isPrimaryMessage(message)) handle(message, logger);
});
void send({ kind: 'hello' });
