import type { ListenerConfig, SidecarConfig } from './config/types';
import type { WatchConfigFileOptions } from './config/watch';
import { AdminServer, text, type AdminResponse } from './admin/server';
import { Metrics } from './telemetry/metrics/metrics';
import type { AdminConnectionCloseReason } from './admin/connection-guard';
import { createDrainingHandler } from './lifecycle/draining-handler';
import { ConfigReloader, type ApplyResult, type ReloadOutcome, type ReloadTarget } from './lifecycle/reloader';
import { settlesWithin } from './core/async';
import { listenerAddress, planListeners } from './listener/plan';
import { ListenerServer } from './listener/server';
import { clientCertFromConnection } from './listener/tls';
import { createRequestHandler, type RequestHandler } from './listener/handler';
import { buildRouteTables, type ListenerIdentity, type ProxyServices, type RuntimeState, type StateHolder } from './proxy/state';
import { createUpgradeHandler } from './listener/upgrade-handler';
import { buildStats } from './telemetry/metrics/stats';
import { readTraffic, TrafficWindow } from './telemetry/metrics/traffic-window';
import { createConnectHandler } from './listener/connect-handler';
import { liveStateOf } from './admin/explain-endpoint';
import { localRequestLog, type RequestLog } from './admin/requests-endpoint';
import type { LiveStateLookup } from './router/explain';
import { FlightRecorder } from './telemetry/flight-recorder';
import { DEFAULT_RECORDER_SETTINGS } from './config/defaults';
import { createAccessLog, withQueryPolicy, type AccessLog } from './telemetry/access-log';
import { silentLogger, type Logger } from './telemetry/logger';
import { startTracing } from './telemetry/otel';
import { RecentErrors, recordingErrors } from './telemetry/recent-errors';
import { spanExportReporter } from './telemetry/span-export-reporter';
import type { Tracing } from './telemetry/tracing';
import { ClusterRuntime, type ClusterView } from './upstream/cluster';
import { systemResolver, type HostResolver } from './upstream/dns';
import { redactSecrets } from './config/redact';
import { WebSocketProxy } from './upstream/websocket';
import { ClusterReporter } from './telemetry/cluster-reporter';
import { ReloadHistory, SerialRuns, type Phase, type ReloadResult } from './runtime/reload-history';
import { adminRoutes, type AdminControl } from './runtime/admin-routes';
import { DrainSequence, type DrainReport, type DrainStages } from './runtime/drain';
import type { ClusterEvents } from './upstream/cluster-events';

/**
 * Time Sidecar.stop gives the last spans to reach the collector. A local collector takes
 * milliseconds; the bound is for one that is slow or gone, which must not hold the process.
 */
export const TRACING_FLUSH_TIMEOUT_MS = 5_000;

export interface SidecarOptions {
  readonly logger?: Logger;
  /** Replaces the access log the config describes (tests capture lines with it). */
  readonly accessLog?: AccessLog;
  /**
   * Other processes (the sibling workers) write to the same access log destination: lines
   * leave in whole-line writes of at most PIPE_BUF bytes (see createAccessLog).
   */
  readonly sharedAccessLog?: boolean;
  /** Default process metrics (event loop lag, memory...) in /metrics; on unless false. */
  readonly processMetrics?: boolean;
  /**
   * Watch the config file (its folder, plus a content-hash poll) and apply changes. Off unless
   * given; SIGHUP handling is the process's business (main.ts), `POST /reload` always works.
   */
  readonly watchConfig?: boolean | WatchConfigFileOptions;
  /**
   * Tracing already started (`sidecar run` starts it before loading the proxy modules). Without
   * it the sidecar starts its own from the config's `tracing` section, private to it.
   */
  readonly tracing?: Tracing;
  /**
   * Bind the admin listener (the default). A worker process (`workers` >= 2) passes false:
   * the primary serves the one admin listener of the process group.
   */
  readonly adminListener?: boolean;
  /** Resolves the host names of endpoints (tests give their own; default: the system's resolver). */
  readonly resolver?: HostResolver;
}

/**
 * Work that must finish before the process exits, after every listener has drained (flushing
 * traces, for one). Hooks run together, bounded by what is left of drain.timeout but never
 * less than DRAINED_HOOKS_MIN_MS; a failing hook is logged and does not stop the others.
 */
export type DrainedHook = () => Promise<void>;

/** Even when drain.timeout is used up by slow requests, the hooks get this long. */
export const DRAINED_HOOKS_MIN_MS = 1_000;
/** After the listeners drained, pools still busy (a request cut at the deadline) get this long before they are destroyed. */
const POOL_CLOSE_GRACE_MS = 1_000;

export type { DrainReport } from './runtime/drain';

/**
 * A running sidecar: listeners, admin listener and the current RuntimeState. The state is
 * swapped as one reference by `applyConfig`; everything a request needs hangs off it.
 */
export class Sidecar implements StateHolder, ReloadTarget, AdminControl {
  current: RuntimeState;
  readonly metrics: Metrics;
  /** The admin listener's connection guard reports here (read at call time: the metrics exist by then). */
  private readonly adminConnectionClosed = (reason: AdminConnectionCloseReason): void => this.metrics.adminConnectionsClosed.labels(reason).inc();
  readonly logger: Logger;
  /** In the order of the running config. A reload replaces the contents, never the array. */
  readonly listeners: ListenerServer[] = [];
  /** Replaced when a reload moves the admin address. */
  admin: AdminServer;
  /** SIGHUP, `POST /reload` and the file watcher all go through it; emits `reload` with each outcome. */
  readonly reloader: ConfigReloader;
  /** See DrainedHook: e.g. `sidecar.onDrained.push(() => tracerProvider.shutdown())`. */
  readonly onDrained: DrainedHook[] = [];
  readonly websockets: WebSocketProxy;
  readonly tracing: Tracing;
  readonly recentErrors = new RecentErrors();
  /** Kept across reloads: a reload does not lose the requests before it. */
  readonly recorder: FlightRecorder;
  private readonly traffic: TrafficWindow;
  private readonly accessLog: AccessLog;
  private readonly services: ProxyServices;
  private readonly clusterEvents: ClusterEvents;
  private readonly resolver: HostResolver;
  private readonly startedAt = Date.now();
  private phase: Phase = 'starting';
  private readonly reloads: ReloadHistory;
  /** Listeners a reload removed or moved away from, closing once their connections are done. */
  private readonly retiringListeners = new Set<ListenerServer>();
  /** Clusters a reload replaced that still had requests in flight. */
  private readonly retiringClusters = new Set<ClusterRuntime>();
  /** applyConfig calls run one at a time: each plans against the state the previous one left. */
  private readonly changes = new SerialRuns();
  private readonly drainSequence: DrainSequence;
  private readonly servesAdmin: boolean;

  private accessLogDropping = false;
  /** Counted per line; logged once per episode (the counter tells how many). */
  private readonly onAccessLogDropped = (): void => {
    this.metrics.accessLogLinesDropped.inc();
    if (this.accessLogDropping) return;
    this.accessLogDropping = true;
    this.logger.warn({ destination: this.current.config.accessLog.path }, 'access log: the destination does not keep up; dropping lines (see sidecar_access_log_lines_dropped_total)');
    setTimeout(() => (this.accessLogDropping = false), ACCESS_LOG_DROP_WARNING_INTERVAL_MS).unref();
  };

  private constructor(config: SidecarConfig, options: SidecarOptions) {
    this.servesAdmin = options.adminListener !== false;
    this.logger = options.logger ?? silentLogger();
    this.metrics = new Metrics({ processMetrics: options.processMetrics });
    // The query policy first: the recent errors `sidecar status` shows keep the query only when the log does.
    this.accessLog = withQueryPolicy(
      recordingErrors(options.accessLog ?? createAccessLog(config.accessLog, { shared: options.sharedAccessLog, onDropped: this.onAccessLogDropped }), this.recentErrors),
      config.accessLog.query,
    );
    this.tracing = options.tracing ?? startTracing(config, { logger: this.logger });
    this.tracing.setObserver(spanExportReporter(this.metrics, this.logger, this.recentErrors));
    this.recorder = new FlightRecorder(config.admin.recorder ?? DEFAULT_RECORDER_SETTINGS);
    this.services = { metrics: this.metrics, accessLog: this.accessLog, logger: this.logger, tracing: this.tracing, recorder: this.recorder };
    this.clusterEvents = new ClusterReporter(this.metrics, this.logger);
    this.resolver = options.resolver ?? systemResolver;
    this.current = buildState(config, new Map(), this.clusterEvents, this.resolver);
    this.websockets = new WebSocketProxy();
    this.metrics.observeClusters(() => this.current.clusters.values());
    this.traffic = new TrafficWindow(() => readTraffic(this.metrics));
    this.admin = new AdminServer(config.admin, adminRoutes(this), this.logger, this.adminConnectionClosed);
    this.reloads = new ReloadHistory(this.metrics, this.logger, this.recentErrors, () => this.current.config);
    this.reloader = new ConfigReloader(this, config.source);
    this.reloads.follow(this.reloader);
    this.drainSequence = new DrainSequence(this.logger, this.drainStages());
    // Every request has ended (and its spans with it) when the hooks run: what is left is
    // flushed, within a bound.
    this.onDrained.push(() => this.tracing.shutdown(TRACING_FLUSH_TIMEOUT_MS));
  }

  /**
   * Builds every listener (reading TLS certificates: a bad file fails here, before anything
   * binds), then binds the admin listener and the listeners; /ready turns 200 once all are bound.
   */
  static async start(config: SidecarConfig, options: SidecarOptions = {}): Promise<Sidecar> {
    const sidecar = new Sidecar(config, options);
    try {
      // Before any listener binds, so no request finds a named endpoint without addresses.
      await Promise.all([...sidecar.current.clusters.values()].map((c) => c.resolveNames()));
      for (const cluster of sidecar.current.clusters.values()) cluster.start();
      for (const listenerConfig of config.listeners) sidecar.listeners.push(sidecar.createListener(listenerConfig));
      if (sidecar.servesAdmin) await sidecar.admin.listen();
      for (const listener of sidecar.listeners) await listener.listen();
    } catch (error) {
      await sidecar.stop({ graceful: false });
      throw error;
    }
    // The initial load is not a reload: sidecar_config_reloads_total counts only the later ones.
    sidecar.metrics.configLastReloadSuccess.set(1);
    sidecar.phase = 'ready';
    if (options.watchConfig !== undefined && options.watchConfig !== false) {
      await sidecar.reloader.watch(options.watchConfig === true ? {} : options.watchConfig);
    }
    sidecar.traffic.start();
    const listeners = sidecar.listeners.map((l) => `${l.config.name}@${l.config.host}:${l.port}`);
    if (sidecar.servesAdmin) sidecar.logger.info({ listeners, admin: `${config.admin.host}:${sidecar.admin.port}` }, 'sidecar ready');
    else sidecar.logger.info({ listeners }, 'listeners ready');
    return sidecar;
  }

  get config(): SidecarConfig {
    return this.current.config;
  }

  /** Config valid, every listener bound, not draining. */
  isReady(): boolean {
    return this.phase === 'ready';
  }

  listenerPort(name: string): number {
    const listener = this.listeners.find((l) => l.config.name === name);
    if (listener === undefined) throw new Error(`no listener named ${name}`);
    return listener.port;
  }

  /**
   * Swaps in a new, already validated config, whole or not at all. New sockets are bound
   * first (listeners added or moved, a moved admin listener); if any bind fails nothing
   * changes. Then the state is swapped: requests in flight finish on the state they began
   * with. Listeners kept at their address take their new settings in place; removed and
   * moved-away ones stop accepting and close once their connections are done. Clusters whose
   * settings are unchanged keep their pools; replaced ones close once their requests end.
   */
  applyConfig(config: SidecarConfig): Promise<ApplyResult> {
    return this.changes.run(() => this.applyNow(config));
  }

  private async applyNow(config: SidecarConfig): Promise<ApplyResult> {
    if (this.phase !== 'ready') return this.reloads.refuse([{ path: '', message: `the sidecar is ${this.phase}; the configuration was not applied` }]);
    const plan = planListeners(
      this.listeners.map((l) => l.config),
      config.listeners,
    );
    if (plan.refused.length > 0) return this.reloads.refuse(plan.refused.map((r) => ({ path: listenerPath(config, r.listener), message: r.message })));

    // Bind every new socket before anything changes, so a failure leaves the running state whole.
    const fresh = new Map<string, ListenerServer>();
    const adminMoves = this.servesAdmin && adminAddress(config) !== adminAddress(this.config);
    let newAdmin: AdminServer | undefined;
    try {
      for (const after of [...plan.add, ...plan.move.map((m) => m.after)]) {
        const listener = this.createListener(after);
        fresh.set(after.name, listener);
        await listener.listen().catch((error: unknown) => {
          throw new BindError(after.name, error);
        });
      }
      if (adminMoves) {
        newAdmin = new AdminServer(config.admin, adminRoutes(this), this.logger, this.adminConnectionClosed);
        await newAdmin.listen().catch((error: unknown) => {
          throw new BindError(undefined, error);
        });
      }
    } catch (error) {
      for (const listener of fresh.values()) listener.destroy();
      void newAdmin?.close();
      const bind = error instanceof BindError ? error : new BindError(undefined, error);
      return this.reloads.refuse([{ path: bind.listener === undefined ? 'admin.address' : listenerPath(config, bind.listener), message: `${bind.message}; nothing was changed` }]);
    }
    const next = buildState(config, this.current.clusters, this.clusterEvents, this.resolver);
    const added = [...next.clusters.values()].filter((c) => this.current.clusters.get(c.config.name) !== c);
    // New clusters' host names are resolved before they take traffic (bounded: DNS_FIRST_RESOLUTION_WAIT_MS).
    await Promise.all(added.map((c) => c.resolveNames()));
    if (this.phase !== 'ready') {
      // A shutdown began while the sockets were being bound or the names resolved.
      for (const listener of fresh.values()) listener.destroy();
      for (const cluster of added) void cluster.destroy();
      void newAdmin?.close();
      return this.reloads.refuse([{ path: '', message: `the sidecar is ${this.phase}; the configuration was not applied` }]);
    }

    const previous = this.current;
    this.current = next;
    if (config.admin.recorder !== undefined) this.recorder.configure(config.admin.recorder);
    const changes: string[] = [];

    const running = new Map(this.listeners.map((l) => [l.config, l]));
    const kept = new Map<string, ListenerServer>();
    for (const { before, after, changed } of plan.keep) {
      const listener = running.get(before) as ListenerServer;
      listener.update(after, this.handlerFor(after));
      kept.set(after.name, listener);
      if (before.name !== after.name) changes.push(`listener ${before.name}: renamed ${after.name}`);
      const settings = changed.filter((field) => field !== 'name');
      if (settings.length > 0) changes.push(`listener ${after.name}: ${settings.join(', ')} updated in place`);
    }
    for (const after of plan.add) changes.push(`listener ${after.name}: bound at ${after.host}:${(fresh.get(after.name) as ListenerServer).port}`);
    const retiring: ListenerServer[] = [];
    for (const { before, after } of plan.move) {
      retiring.push(running.get(before) as ListenerServer);
      changes.push(`listener ${after.name}: moved from ${listenerAddress(before)} to ${after.host}:${(fresh.get(after.name) as ListenerServer).port}`);
    }
    for (const before of plan.remove) {
      const listener = running.get(before) as ListenerServer;
      listener.setHandler(createDrainingHandler(identityOf(before), this.services));
      retiring.push(listener);
      changes.push(`listener ${before.name}: removed (closing once its connections are done)`);
    }
    this.listeners.splice(0, this.listeners.length, ...config.listeners.map((l) => (fresh.get(l.name) ?? kept.get(l.name)) as ListenerServer));
    const deadline = Date.now() + config.drain.timeoutMs;
    for (const listener of retiring) {
      this.retiringListeners.add(listener);
      void listener.drain(deadline).then((result) => {
        this.retiringListeners.delete(listener);
        if (result.cut > 0) this.logger.warn({ listener: listener.config.name, cut: result.cut }, 'a retired listener still had busy connections at drain.timeout; they were cut');
      });
    }

    for (const [name, cluster] of previous.clusters) {
      const next = this.current.clusters.get(name);
      if (next === cluster) continue;
      changes.push(`cluster ${name}: ${next === undefined ? 'removed' : 'rebuilt'}`);
      cluster.retire();
      this.retiringClusters.add(cluster);
    }
    for (const cluster of this.retiringClusters) if (cluster.inFlight === 0) this.retiringClusters.delete(cluster);
    // After the retirements, which withdraw the metrics of the runtimes they replace.
    for (const [name, cluster] of this.current.clusters) if (previous.clusters.get(name) !== cluster) cluster.start();
    for (const name of this.current.clusters.keys()) if (!previous.clusters.has(name)) changes.push(`cluster ${name}: added`);

    if (newAdmin !== undefined) {
      const old = this.admin;
      this.admin = newAdmin;
      // Not awaited: the request that asked for this reload may still be on the old listener.
      void old.closeGracefully();
      changes.push(`admin: moved to ${config.admin.host}:${newAdmin.port}`);
    } else {
      this.admin.update(config.admin);
      if (config.admin.token !== previous.config.admin.token) changes.push('admin: token updated');
    }
    for (const field of STARTUP_ONLY_SETTINGS) {
      if (JSON.stringify(config[field]) !== JSON.stringify(previous.config[field])) changes.push(`${field}: changed; takes effect at the next start`);
    }

    if (JSON.stringify(tracingSection(previous.config)) !== JSON.stringify(tracingSection(config))) {
      changes.push('tracing: changed; takes effect at the next start');
    }
    this.recordReload('success', undefined);
    if (changes.length > 0) this.logger.info({ changes }, 'config changes');
    return { ok: true, changes };
  }

  recordReload(result: ReloadResult, error: string | undefined): void {
    this.reloads.record(result, error);
  }

  /**
   * Graceful shutdown, the order load balancers need: /ready answers 503 at once; everything
   * keeps serving for `drain.delay` (the time a load balancer takes to notice); then the
   * listeners stop accepting (new connections are refused at TCP level), responses carry
   * `Connection: close`, idle connections close, and requests in flight get until
   * `drain.timeout` before their connections are cut. Then the pools close, the onDrained
   * hooks run, the admin listener closes and the access log is flushed. Idempotent.
   */
  drain(options: { delayMs?: number; timeoutMs?: number } = {}): Promise<DrainReport> {
    return this.drainSequence.run(options.delayMs ?? this.config.drain.delayMs, options.timeoutMs ?? this.config.drain.timeoutMs);
  }

  /** This process's stages of the shared drain sequence (runtime/drain.ts). */
  private drainStages(): DrainStages {
    return {
      // A worker's /ready is the primary's to answer.
      startMessage: this.servesAdmin ? 'draining: /ready answers 503; still serving during drain.delay' : 'draining',
      startFields: {},
      stopMessage: 'draining: listeners stopped accepting; waiting for requests in flight',
      stopFields: () => ({ listeners: this.listeners.length }),
      begin: () => {
        this.phase = 'draining';
        this.reloader.close();
        this.traffic.stop();
      },
      stoppedMeanwhile: () => this.phase === 'stopped',
      changesIdle: () => this.changes.idle,
      stopServing: async (deadline) => {
        // Tunnels have no request boundary to wait for, and would hold the listeners open.
        this.websockets.closeAll();
        const results = await Promise.all([...this.listeners, ...this.retiringListeners].map((l) => l.drain(deadline)));
        return { cutConnections: results.reduce((n, r) => n + r.cut, 0) };
      },
      release: async (deadline) => {
        // Every request has ended or was cut: the pools have nothing left to serve.
        const clusters = [...this.current.clusters.values(), ...this.retiringClusters];
        const closed = await settlesWithin(Promise.all(clusters.map((c) => c.close())), POOL_CLOSE_GRACE_MS);
        if (!closed) await Promise.all(clusters.map((c) => c.destroy()));

        const hookBudgetMs = Math.max(deadline - Date.now(), DRAINED_HOOKS_MIN_MS);
        const hooks = Promise.allSettled(this.onDrained.map((hook) => Promise.resolve().then(hook))).then((settled) => {
          for (const s of settled) if (s.status === 'rejected') this.logger.error({ err: s.reason }, 'a drain hook failed');
        });
        if (!(await settlesWithin(hooks, hookBudgetMs))) this.logger.warn({ hookBudgetMs }, 'drain hooks did not finish in time');
      },
      close: async () => {
        await this.admin.close();
        await this.accessLog.flush();
      },
      end: () => {
        this.phase = 'stopped';
      },
    };
  }

  /** `graceful`: drain() as configured. Otherwise every connection and pool is cut at once. */
  async stop(options: { graceful: boolean } = { graceful: true }): Promise<void> {
    if (options.graceful) {
      await this.drain();
      return;
    }
    this.phase = 'stopped';
    this.reloader.close();
    this.drainSequence.skipDelay();
    this.websockets.closeAll();
    this.traffic.stop();
    for (const l of [...this.listeners, ...this.retiringListeners]) l.destroy();
    await Promise.all([
      ...[...this.current.clusters.values(), ...this.retiringClusters].map((c) => c.destroy()),
      this.tracing.shutdown(TRACING_FLUSH_TIMEOUT_MS),
    ]);
    await this.admin.close();
    await this.accessLog.flush();
  }

  /** A listener and its request handler; TLS listeners read their certificates here. */
  private createListener(config: ListenerConfig): ListenerServer {
    const handleRequest = this.handlerFor(config);
    const dropped = this.metrics.listenerConnectionsDropped;
    const listener = new ListenerServer(config, handleRequest, this.logger, undefined, {
      connectionDropped: (reason) => dropped.labels(config.name, reason).inc(),
      http2PrematureResetClose: () => this.metrics.http2PrematureResetCloses.labels(config.name).inc(),
    });
    const clientCert = config.tls?.clientCaPath !== undefined ? clientCertFromConnection : undefined;
    listener.server.on('upgrade', createUpgradeHandler(identityOf(config), this, this.services, this.websockets, handleRequest, clientCert));
    listener.onConnect(createConnectHandler(identityOf(config), this, this.services));
    return listener;
  }

  private handlerFor(config: ListenerConfig): RequestHandler {
    const clientCert = config.tls?.clientCaPath !== undefined ? clientCertFromConnection : undefined;
    return createRequestHandler(identityOf(config), this, this.services, clientCert);
  }

  /** GET /ready: 200 only in the `ready` phase. */
  readiness(): { ready: boolean; reason: string } {
    return { ready: this.phase === 'ready', reason: this.phase === 'ready' ? 'ready' : this.phase === 'draining' ? 'draining' : 'not ready' };
  }

  /** GET /metrics of this process. */
  async metricsAnswer(): Promise<AdminResponse> {
    return text(200, await this.metrics.registry.metrics(), this.metrics.registry.contentType);
  }

  /** GET /explain and dry-run reloads: the running config and this process's breakers and budgets. */
  explainSnapshot(): { readonly config: SidecarConfig; readonly live: LiveStateLookup } {
    return { config: this.current.config, live: liveStateOf(this.current.clusters) };
  }

  /** GET /requests: this process records its own requests. */
  get recording(): RequestLog {
    return localRequestLog(this, this.recorder);
  }

  /** GET /stats of this process. */
  stats(): ReturnType<typeof buildStats> {
    return buildStats({
      ready: this.phase === 'ready',
      startedAtMs: this.startedAt,
      config: this.current.config,
      lastReload: { ok: this.reloads.lastError === undefined, at: this.reloads.lastAt, error: this.reloads.lastError },
      listeners: this.listeners.map((l) => ({
        name: l.config.name,
        host: l.config.host,
        port: l.port,
        tls: l.config.tls !== undefined,
        mtls: l.config.tls?.clientCaPath !== undefined,
        routes: l.config.routes.length,
        connections: l.connections,
      })),
      clusters: this.current.clusters.values(),
      metrics: this.metrics,
      traffic: this.traffic,
      tracing: this.tracing,
      recentErrors: this.recentErrors,
    });
  }

  /** GET /clusters of this process. */
  clustersView(): { clusters: ClusterView[] } {
    return { clusters: [...this.current.clusters.values()].map((c) => c.view()) };
  }

  /** GET /config of this process. */
  configView(): ConfigView {
    const config = this.current.config;
    return {
      source: config.source,
      sha256: config.sha256,
      loadedAt: config.loadedAt.toISOString(),
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      lastReloadError: this.reloads.lastError ?? null,
      lastReload: this.reloads.lastOutcome ?? null,
      // What a reload or the drain left behind that has not closed yet.
      retiring: {
        listeners: [...this.retiringListeners].map((l) => `${l.config.name}@${l.config.host}:${l.port}`),
        clusters: [...this.retiringClusters].filter((c) => c.inFlight > 0).map((c) => c.config.name),
      },
      config: redactSecrets(config.document),
    };
  }
}

/** GET /config. */
export interface ConfigView {
  readonly source: string;
  readonly sha256: string;
  readonly loadedAt: string;
  readonly uptimeSeconds: number;
  readonly lastReloadError: string | null;
  readonly lastReload: (ReloadOutcome & { at: string }) | null;
  readonly retiring: { readonly listeners: readonly string[]; readonly clusters: readonly string[] };
  readonly config: unknown;
}

/** At most one "dropping access log lines" warning per this interval. */
const ACCESS_LOG_DROP_WARNING_INTERVAL_MS = 60_000;

/** Settings read once at start; a reload that changes them says so instead of pretending. */
const STARTUP_ONLY_SETTINGS = ['accessLog', 'workers'] as const;

class BindError extends Error {
  constructor(
    readonly listener: string | undefined,
    cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
  }
}

function identityOf(config: ListenerConfig): ListenerIdentity {
  return { name: config.name, proto: config.tls ? 'https' : 'http', config };
}

function adminAddress(config: SidecarConfig): string {
  return `${config.admin.host}:${config.admin.port}`;
}

function listenerPath(config: SidecarConfig, name: string): string {
  const index = config.listeners.findIndex((l) => l.name === name);
  return index === -1 ? 'listeners' : `listeners[${index}]`;
}

function tracingSection(config: SidecarConfig): unknown {
  const document = config.document;
  return typeof document === 'object' && document !== null && 'tracing' in document ? document.tracing : undefined;
}


function buildState(config: SidecarConfig, reusable: ReadonlyMap<string, ClusterRuntime>, events: ClusterEvents, resolver: HostResolver): RuntimeState {
  const clusters = new Map<string, ClusterRuntime>();
  for (const [name, clusterConfig] of config.clusters) {
    const existing = reusable.get(name);
    clusters.set(
      name,
      existing !== undefined && existing.config.fingerprint === clusterConfig.fingerprint ? existing : new ClusterRuntime(clusterConfig, events, resolver),
    );
  }
  return { config, clusters, routes: buildRouteTables(config) };
}
