import type { SidecarConfig } from './config/types';
import { AdminServer, json, text, type AdminHandler } from './admin/server';
import { Metrics } from './admin/metrics';
import { ListenerServer } from './listener/server';
import { createRequestHandler } from './proxy/handler';
import { buildRouteTables, type ProxyServices, type RuntimeState, type StateHolder } from './proxy/state';
import { createAccessLog, type AccessLog } from './telemetry/access-log';
import { silentLogger, type Logger } from './telemetry/logger';
import { ClusterRuntime } from './upstream/cluster';

export interface SidecarOptions {
  readonly logger?: Logger;
  /** Replaces the access log the config describes (tests capture lines with it). */
  readonly accessLog?: AccessLog;
  /** Default process metrics (event loop lag, memory...) in /metrics; on unless false. */
  readonly processMetrics?: boolean;
}

/**
 * A running sidecar: listeners, admin listener and the current RuntimeState. The state is
 * swapped as one reference by `applyConfig`; everything a request needs hangs off it.
 */
export class Sidecar implements StateHolder {
  current: RuntimeState;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly listeners: ListenerServer[] = [];
  readonly admin: AdminServer;
  private readonly accessLog: AccessLog;
  private readonly services: ProxyServices;
  private readonly startedAt = Date.now();
  private ready = false;
  private lastReloadError: string | undefined;

  private constructor(config: SidecarConfig, options: SidecarOptions) {
    this.logger = options.logger ?? silentLogger();
    this.metrics = new Metrics({ processMetrics: options.processMetrics });
    this.accessLog = options.accessLog ?? createAccessLog(config.accessLog);
    this.services = { metrics: this.metrics, accessLog: this.accessLog, logger: this.logger };
    this.current = buildState(config, new Map(), this.services);
    for (const cluster of this.current.clusters.values()) cluster.start();
    this.admin = new AdminServer(config.admin, this.adminRoutes(), this.logger);
  }

  /** Binds the admin listener and every listener; /ready turns 200 once all are bound. */
  static async start(config: SidecarConfig, options: SidecarOptions = {}): Promise<Sidecar> {
    const sidecar = new Sidecar(config, options);
    try {
      await sidecar.admin.listen();
      for (const listenerConfig of config.listeners) {
        const identity = { name: listenerConfig.name, proto: listenerConfig.tls ? 'https' : 'http', config: listenerConfig } as const;
        const listener = new ListenerServer(listenerConfig, createRequestHandler(identity, sidecar, sidecar.services), sidecar.logger);
        sidecar.listeners.push(listener);
        await listener.listen();
      }
    } catch (error) {
      await sidecar.stop({ graceful: false });
      throw error;
    }
    sidecar.metrics.configReloads.labels('success').inc();
    sidecar.metrics.configLastReloadSuccess.set(1);
    sidecar.ready = true;
    sidecar.logger.info(
      { listeners: sidecar.listeners.map((l) => `${l.config.name}@${l.config.host}:${l.port}`), admin: `${config.admin.host}:${sidecar.admin.port}` },
      'sidecar ready',
    );
    return sidecar;
  }

  get config(): SidecarConfig {
    return this.current.config;
  }

  isReady(): boolean {
    return this.ready;
  }

  listenerPort(name: string): number {
    const listener = this.listeners.find((l) => l.config.name === name);
    if (listener === undefined) throw new Error(`no listener named ${name}`);
    return listener.port;
  }

  /**
   * Swaps in a new config. Clusters whose settings are unchanged keep their pools; replaced
   * ones are closed once the requests still using them end. Listener addresses cannot move
   * in place: such a config is refused and the running one stays.
   */
  applyConfig(config: SidecarConfig): { ok: true } | { ok: false; error: string } {
    const before = this.current.config.listeners.map((l) => `${l.name}@${l.host}:${l.port}`).join(',');
    const after = config.listeners.map((l) => `${l.name}@${l.host}:${l.port}`).join(',');
    if (before !== after) {
      const error = `listeners cannot be added, removed or moved by a reload (running: ${before}; new: ${after}); restart the sidecar`;
      this.recordReload(false, error);
      return { ok: false, error };
    }
    const previous = this.current;
    this.current = buildState(config, previous.clusters, this.services);
    const kept = new Set(previous.clusters.values());
    for (const [name, cluster] of previous.clusters) {
      if (this.current.clusters.get(name) !== cluster) cluster.retire();
    }
    // After the retirements, which withdraw the metrics of the runtimes they replace.
    for (const cluster of this.current.clusters.values()) if (!kept.has(cluster)) cluster.start();
    this.recordReload(true, undefined);
    return { ok: true };
  }

  recordReload(ok: boolean, error: string | undefined): void {
    this.metrics.configReloads.labels(ok ? 'success' : 'failure').inc();
    this.metrics.configLastReloadSuccess.set(ok ? 1 : 0);
    this.lastReloadError = error;
    if (ok) this.logger.info({ sha256: this.current.config.sha256 }, 'config applied');
    else this.logger.error({ error }, 'config rejected; the last good config stays');
  }

  async stop(options: { graceful: boolean } = { graceful: true }): Promise<void> {
    this.ready = false;
    if (options.graceful) await Promise.all(this.listeners.map((l) => l.close()));
    else for (const l of this.listeners) l.destroy();
    await Promise.all([...this.current.clusters.values()].map((c) => (options.graceful ? c.close() : c.destroy())));
    await this.admin.close();
    await this.accessLog.flush();
  }

  private adminRoutes(): Map<string, AdminHandler> {
    return new Map<string, AdminHandler>([
      ['GET /live', () => text(200, 'live\n')],
      ['GET /ready', () => (this.ready ? text(200, 'ready\n') : text(503, 'not ready\n'))],
      ['GET /config', () => json(200, this.configView())],
      ['GET /metrics', async () => text(200, await this.metrics.registry.metrics(), this.metrics.registry.contentType)],
      ['GET /clusters', () => json(200, { clusters: [...this.current.clusters.values()].map((c) => c.view()) })],
    ]);
  }

  private configView(): object {
    const config = this.current.config;
    return {
      source: config.source,
      sha256: config.sha256,
      loadedAt: config.loadedAt.toISOString(),
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      lastReloadError: this.lastReloadError ?? null,
      config: redactSecrets(config.document),
    };
  }
}

function buildState(config: SidecarConfig, reusable: ReadonlyMap<string, ClusterRuntime>, services: ProxyServices): RuntimeState {
  const clusters = new Map<string, ClusterRuntime>();
  for (const [name, clusterConfig] of config.clusters) {
    const existing = reusable.get(name);
    clusters.set(
      name,
      existing !== undefined && existing.config.fingerprint === clusterConfig.fingerprint ? existing : new ClusterRuntime(clusterConfig, services),
    );
  }
  return { config, clusters, routes: buildRouteTables(config) };
}

const SECRET_KEYS = new Set(['token', 'password', 'secret']);

/**
 * The config as written, with secrets replaced: tokens, and any value that holds PEM key
 * material. TLS `cert`/`key` fields are file paths and stay visible.
 */
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (typeof value === 'string') return value.includes('PRIVATE KEY') ? '[redacted]' : value;
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.has(k) ? '[redacted]' : redactSecrets(v);
  return out;
}
