/**
 * The primary process of a worker group (`workers` >= 2). It owns what exists once per group:
 * the config (loading, validation, the file watch, SIGHUP, `POST /reload`), the admin
 * listener, the signals and the order of the drain. The workers (worker-main.ts) own the
 * listeners (shared through node:cluster) and everything on the request path.
 *
 * This module must not load the proxy, undici or OpenTelemetry: imports from the request path
 * are type-only.
 */
import type { AdminConnectionCloseReason } from '../admin/connection-guard';
import { AdminServer, text, type AdminResponse } from '../admin/server';
import { PrimaryMetrics } from '../telemetry/metrics/metrics';
import type { SidecarStats } from '../telemetry/metrics/stats';
import type { ConfigError } from '../config/load';
import { redactSecrets } from '../config/redact';
import type { SidecarConfig } from '../config/types';
import { installLifecycleSignals } from '../lifecycle/signals';
import { ConfigReloader, type ApplyResult, type ReloadTarget, type WorkerApplyView } from '../lifecycle/reloader';
import type { ConfigView } from '../sidecar';
import { ReloadHistory, SerialRuns, type Phase, type ReloadResult } from '../runtime/reload-history';
import { adminRoutes, type AdminControl } from '../runtime/admin-routes';
import { DrainSequence, type DrainReport, type DrainStages } from '../runtime/drain';
import type { Logger } from '../telemetry/logger';
import { DEFAULT_RECENT_ERRORS_KEPT, RecentErrors } from '../telemetry/recent-errors';
import type { ClusterView } from '../upstream/cluster';
import type { RequestLog, RequestsPage } from '../admin/requests-endpoint';
import type { RequestRecord } from '../telemetry/flight-recorder';
import { GroupMetrics, type MetricsJson, type WorkerMetricsAnswer } from './metrics-aggregation';
import type { ApplyAnswer, WorkerQuery } from './protocol';
import { mergeRequestPages, newestRecord, type WorkerRequestsAnswer } from './requests-aggregation';
import { mergeStats, type GroupStats } from './stats-aggregation';
import { WORKER_DRAIN_EXTRA_MS, WorkerSupervisor, type SlotView, type WorkerAnswer, type WorkerRequest } from './supervisor';

/** Bound on a worker's answer to an admin query (/metrics, /stats, /clusters, /config). */
export const ADMIN_WORKER_ANSWER_TIMEOUT_MS = 3_000;
/** Bound on a worker applying a config (binding new listeners, reading certificates). */
export const WORKER_APPLY_TIMEOUT_MS = 30_000;

/** `sidecar run` with `workers` >= 2: start the group (exit 1 when it cannot start), then live until a stop signal. */
export async function runWorkerGroup(config: SidecarConfig, logger: Logger, onStarted: () => void): Promise<WorkerGroup> {
  const group = new WorkerGroup(config, logger);
  // Whatever ends this process, no worker outlives it.
  process.once('exit', () => group.supervisor.killAll());
  try {
    await group.start();
  } catch (error) {
    process.stderr.write(`sidecar: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
  onStarted();
  installLifecycleSignals({ reloader: group.reloader, drain: () => group.drain(), exitNow: () => group.supervisor.killAll() }, logger);
  return group;
}

export class WorkerGroup implements ReloadTarget, AdminControl {
  /** The group's config: every ready worker runs it, and a (re)started worker starts with it. */
  current: SidecarConfig;
  readonly metrics: PrimaryMetrics;
  /** The admin listener's connection guard reports here (read at call time: the metrics exist by then). */
  private readonly adminConnectionClosed = (reason: AdminConnectionCloseReason): void => this.metrics.adminConnectionsClosed.labels(reason).inc();
  readonly supervisor: WorkerSupervisor;
  readonly reloader: ConfigReloader;
  admin: AdminServer;
  private readonly groupMetrics: GroupMetrics;
  private readonly recentErrors = new RecentErrors();
  private readonly startedAt = Date.now();
  private phase: Phase = 'starting';
  private readonly reloads: ReloadHistory;
  /** Reloads and catch-ups run one at a time, each against what the previous one left. */
  private readonly changes = new SerialRuns();
  private readonly drainSequence: DrainSequence;

  constructor(
    config: SidecarConfig,
    private readonly logger: Logger,
  ) {
    this.current = config;
    this.metrics = new PrimaryMetrics({ workers: config.workers });
    this.groupMetrics = new GroupMetrics(this.metrics);
    this.supervisor = new WorkerSupervisor(config.workers, () => this.current, logger);
    this.supervisor.on('exit', ({ pid }) => this.groupMetrics.workerExited(pid));
    this.supervisor.on('crash', ({ worker }) => this.metrics.workerRestarts.labels(String(worker)).inc());
    this.supervisor.on('ready', () => {
      if (this.phase === 'ready') this.catchUp();
    });
    this.admin = new AdminServer(config.admin, adminRoutes(this), logger, this.adminConnectionClosed);
    this.reloads = new ReloadHistory(this.metrics, logger, this.recentErrors, () => this.current);
    this.reloader = new ConfigReloader(this, config.source);
    this.reloads.follow(this.reloader);
    this.drainSequence = new DrainSequence(logger, this.drainStages());
  }

  get config(): SidecarConfig {
    return this.current;
  }

  /** Binds the admin listener, forks the workers and waits until every one is ready. */
  async start(): Promise<void> {
    await this.admin.listen();
    try {
      await this.supervisor.start();
    } catch (error) {
      this.supervisor.killAll();
      await this.admin.close();
      throw error;
    }
    // The initial load is not a reload: sidecar_config_reloads_total counts only the later ones.
    this.metrics.configLastReloadSuccess.set(1);
    this.phase = 'ready';
    void this.reloader.watch({});
    const slots = this.supervisor.views();
    this.logger.info(
      {
        listeners: (slots[0]?.listeners ?? []).map((l) => `${l.name}@${l.host}:${l.port}`),
        admin: `${this.current.admin.host}:${this.admin.port}`,
        workers: slots.map((s) => s.pid),
      },
      'sidecar ready',
    );
  }

  /** Running, and every worker ready on the group's config. */
  readiness(): { ready: boolean; reason: string } {
    if (this.phase !== 'ready') return { ready: false, reason: this.phase === 'draining' ? 'draining' : 'not ready' };
    const behind = this.supervisor.views().filter((s) => s.state !== 'ready' || s.sha256 !== this.current.sha256);
    if (behind.length === 0) return { ready: true, reason: 'ready' };
    const why = (s: SlotView): string => (s.state === 'ready' ? 'is taking the running configuration' : s.state === 'down' ? 'is restarting' : `is ${s.state}`);
    return { ready: false, reason: `not ready: ${behind.map((s) => `worker ${s.worker} ${why(s)}`).join(', ')}` };
  }

  /**
   * Sends a validated config to every ready worker; applied when all of them applied it. When
   * one refuses (a listener that cannot bind, say), the reload is refused with its reasons and
   * the workers that had applied it are replaced by new ones on the running config, so that
   * the group never serves two configs for longer than a drain.
   */
  applyConfig(config: SidecarConfig): Promise<ApplyResult> {
    return this.changes.run(() => this.applyNow(config));
  }

  private async applyNow(config: SidecarConfig): Promise<ApplyResult> {
    if (this.phase !== 'ready') return this.reloads.refuse([{ path: '', message: `the sidecar is ${this.phase}; the configuration was not applied` }]);
    let newAdmin: AdminServer | undefined;
    if (adminAddress(config) !== adminAddress(this.current)) {
      newAdmin = new AdminServer(config.admin, adminRoutes(this), this.logger, this.adminConnectionClosed);
      try {
        await newAdmin.listen();
      } catch (error) {
        void newAdmin.close();
        return this.reloads.refuse([{ path: 'admin.address', message: `${error instanceof Error ? error.message : String(error)}; nothing was changed` }]);
      }
    }

    const targets = this.supervisor.readySlots();
    const answers = await Promise.all(
      targets.map(async (slot) => ({ slot, answer: await this.supervisor.request<ApplyAnswer>(slot.worker, { kind: 'apply', config }, WORKER_APPLY_TIMEOUT_MS) })),
    );
    const views: WorkerApplyView[] = [];
    const refusals: Array<{ slot: SlotView; errors: readonly ConfigError[] }> = [];
    const unsure: Array<{ slot: SlotView; error: string }> = [];
    const applied: Array<{ slot: SlotView; value: Extract<ApplyAnswer, { ok: true }> }> = [];
    for (const { slot, answer } of answers) {
      if (answer.ok) {
        if (answer.value.ok) applied.push({ slot, value: answer.value });
        else refusals.push({ slot, errors: answer.value.errors });
      }
      // Gone: it restarts with the group's config, whichever that turns out to be.
      else if (!this.supervisor.runs(slot.worker, slot.pid)) views.push({ worker: slot.worker, pid: slot.pid, result: 'exited', message: answer.error });
      // Alive but silent: whether it applied the config is unknown.
      else unsure.push({ slot, error: answer.error });
    }

    if (refusals.length > 0 || unsure.length > 0 || applied.length === 0) {
      void newAdmin?.close();
      const problems: Array<{ path: string; message: string }> = [];
      for (const { slot, errors } of refusals) {
        views.push({ worker: slot.worker, pid: slot.pid, result: 'rejected', message: errors.map((e) => (e.path === '' ? e.message : `${e.path}: ${e.message}`)).join('\n') });
      }
      problems.push(...sameProblemsOnce(refusals));
      for (const { slot, error } of unsure) {
        views.push({ worker: slot.worker, pid: slot.pid, result: 'no answer', message: error });
        problems.push({ path: '', message: `${error}; it is replaced by a worker on the running configuration` });
      }
      for (const { slot } of applied) {
        views.push({ worker: slot.worker, pid: slot.pid, result: 'replaced', message: 'it had applied the configuration; it is replaced by a worker on the running configuration' });
      }
      if (applied.length === 0 && refusals.length === 0 && unsure.length === 0) {
        problems.push({ path: '', message: 'no worker is running to take the configuration (every one is restarting); the running configuration stays' });
      }
      for (const { slot } of [...applied, ...unsure]) this.supervisor.recycle(slot.worker, this.current.drain.timeoutMs);
      return this.reloads.refuse(problems, sortViews(views));
    }

    const previous = this.current;
    this.current = config;
    const changes = new Set<string>();
    for (const { slot, value } of applied) {
      this.supervisor.applied(slot.worker, slot.pid, value.sha256, value.listeners);
      views.push({ worker: slot.worker, pid: slot.pid, result: 'applied' });
      for (const change of value.changes) changes.add(change);
    }
    if (newAdmin !== undefined) {
      const old = this.admin;
      this.admin = newAdmin;
      // Not awaited: the request that asked for this reload may still be on the old listener.
      void old.closeGracefully();
      changes.add(`admin: moved to ${config.admin.host}:${newAdmin.port}`);
    } else {
      this.admin.update(config.admin);
      if (config.admin.token !== previous.admin.token) changes.add('admin: token updated');
    }
    this.recordReload('success', undefined);
    if (changes.size > 0) this.logger.info({ changes: [...changes] }, 'config changes');
    return { ok: true, changes: [...changes], workers: sortViews(views) };
  }

  /**
   * A worker that became ready on an older config than the group's (it was started while a
   * reload was under way) applies the group's config, or is replaced when it cannot.
   */
  private catchUp(): void {
    void this.changes.run(async () => {
      if (this.phase !== 'ready') return;
      const config = this.current;
      for (const slot of this.supervisor.readySlots()) {
        if (slot.sha256 === config.sha256) continue;
        const answer = await this.supervisor.request<ApplyAnswer>(slot.worker, { kind: 'apply', config }, WORKER_APPLY_TIMEOUT_MS);
        if (answer.ok && answer.value.ok) {
          this.supervisor.applied(slot.worker, slot.pid, answer.value.sha256, answer.value.listeners);
          continue;
        }
        const why = answer.ok ? (answer.value.ok ? '' : answer.value.error) : answer.error;
        this.logger.error({ worker: slot.worker, pid: slot.pid, error: why }, 'a worker could not take the running configuration');
        if (this.supervisor.runs(slot.worker, slot.pid)) this.supervisor.recycle(slot.worker, config.drain.timeoutMs);
      }
    });
  }

  recordReload(result: ReloadResult, error: string | undefined): void {
    this.reloads.record(result, error);
  }

  /**
   * The single-process drain, in the same order, for the group: /ready answers 503 at once;
   * the workers keep serving for drain.delay; then every worker stops accepting, its requests
   * in flight get until drain.timeout, it flushes (spans, access log) and exits; then the
   * admin listener closes. Idempotent.
   */
  drain(): Promise<DrainReport> {
    const { delayMs, timeoutMs } = this.current.drain;
    return this.drainSequence.run(delayMs, timeoutMs);
  }

  /** The group's stages of the shared drain sequence (runtime/drain.ts): the workers drain themselves. */
  private drainStages(): DrainStages {
    return {
      startMessage: 'draining: /ready answers 503; still serving during drain.delay',
      startFields: { workers: this.supervisor.size },
      stopMessage: 'draining: the workers stopped accepting; waiting for requests in flight',
      stopFields: () => ({ workers: this.supervisor.size }),
      begin: () => {
        this.phase = 'draining';
        this.reloader.close();
      },
      stoppedMeanwhile: () => false,
      changesIdle: () => this.changes.idle,
      stopServing: async (deadline) => {
        const timeoutMs = Math.max(deadline - Date.now(), 0);
        const outcome = await this.supervisor.drain(timeoutMs, timeoutMs + WORKER_DRAIN_EXTRA_MS);
        return { cutConnections: outcome.cutConnections, logFields: outcome.killed.length > 0 ? { killedWorkers: outcome.killed } : {} };
      },
      // Each worker closed its pools and flushed its spans and access log before it exited.
      release: () => Promise.resolve(),
      close: () => this.admin.close(),
      end: () => {
        this.phase = 'stopped';
      },
    };
  }

  /** Asks every slot; a slot with no process, or a worker that does not answer in time, gets an error naming it. */
  private ask<T>(query: WorkerQuery): Promise<Array<{ slot: SlotView; answer: WorkerAnswer<T> }>> {
    return Promise.all(this.supervisor.views().map(async (slot) => ({ slot, answer: await this.askSlot<T>(slot, { kind: 'query', query }) })));
  }

  /** GET /explain: the breakers and budgets live in the workers, so explained from the config alone. */
  explainSnapshot(): { readonly config: SidecarConfig; readonly live: undefined } {
    return { config: this.current, live: undefined };
  }

  /** GET /requests: each worker records the requests it serves; the primary merges what they answer. */
  readonly recording: RequestLog = {
    enabled: () => this.current.admin.recorder !== undefined,
    list: async (filter) => {
      const answers = await Promise.all(
        this.supervisor.views().map(async (slot): Promise<WorkerRequestsAnswer> => {
          const answer = await this.askSlot<RequestsPage>(slot, { kind: 'requests', filter });
          return answer.ok ? { worker: slot.worker, pid: slot.pid, page: answer.value } : { worker: slot.worker, pid: slot.pid, page: undefined, error: answer.error };
        }),
      );
      return mergeRequestPages(answers, filter.limit);
    },
    get: async (requestId) => {
      const answers = await Promise.all(
        this.supervisor.views().map(async (slot) => ({ worker: slot.worker, answer: await this.askSlot<RequestRecord | null>(slot, { kind: 'request', requestId }) })),
      );
      return newestRecord(answers.flatMap(({ worker, answer }) => (answer.ok ? [{ worker, record: answer.value }] : [])));
    },
  };

  private askSlot<T>(slot: SlotView, message: WorkerRequest): Promise<WorkerAnswer<T>> {
    if (slot.pid === null) return Promise.resolve({ ok: false, error: `worker ${slot.worker} is ${slot.state === 'down' ? 'down (restarting)' : slot.state}` });
    return this.supervisor.request<T>(slot.worker, message, ADMIN_WORKER_ANSWER_TIMEOUT_MS);
  }

  async metricsAnswer(): Promise<AdminResponse> {
    const answers = await this.ask<MetricsJson>('metrics');
    const workerAnswers: WorkerMetricsAnswer[] = [];
    for (const { slot, answer } of answers) {
      if (slot.pid === null) continue;
      if (!answer.ok) this.logger.warn({ worker: slot.worker, pid: slot.pid, error: answer.error }, '/metrics: a worker did not answer; its last counters are used');
      workerAnswers.push({ worker: slot.worker, pid: slot.pid, metrics: answer.ok ? answer.value : undefined });
    }
    const exposition = await this.groupMetrics.render(
      answers.map((a) => a.slot.worker),
      workerAnswers,
    );
    return text(200, exposition.text, exposition.contentType);
  }

  async stats(): Promise<GroupStats> {
    const answers = await this.ask<SidecarStats>('stats');
    const reloads = { success: 0, failure: 0 };
    for (const { labels, value } of (await this.metrics.configReloads.get()).values) {
      if (labels.result === 'success') reloads.success += value;
      else if (labels.result === 'failure') reloads.failure += value;
    }
    const config = this.current;
    return mergeStats(
      {
        ready: this.readiness().ready,
        pid: process.pid,
        startedAtMs: this.startedAt,
        config: {
          source: config.source,
          sha256: config.sha256,
          loadedAt: config.loadedAt.toISOString(),
          lastReload: { ok: this.reloads.lastError === undefined, at: this.reloads.lastAt?.toISOString() ?? null, error: this.reloads.lastError ?? null },
          reloads,
        },
        recentErrors: this.recentErrors.list().reverse(),
        errorsTotal: this.recentErrors.count,
        recentErrorsKept: DEFAULT_RECENT_ERRORS_KEPT,
      },
      answers.map(({ slot, answer }) => ({
        worker: slot.worker,
        pid: slot.pid,
        state: slot.state,
        ready: slot.state === 'ready' && slot.sha256 === config.sha256,
        sha256: slot.sha256,
        restarts: slot.restarts,
        stats: answer.ok ? answer.value : undefined,
        ...(answer.ok ? {} : { error: answer.error }),
      })),
    );
  }

  /** Breakers, budgets, health checks and outlier detection are per worker: one entry per worker and cluster. */
  async clustersView(): Promise<object> {
    const answers = await this.ask<{ clusters: ClusterView[] }>('clusters');
    const entries: Array<ClusterView & { worker: number; pid: number | null }> = [];
    const unanswered: Array<{ worker: number; pid: number | null; error: string }> = [];
    for (const { slot, answer } of answers) {
      if (answer.ok) for (const cluster of answer.value.clusters) entries.push({ worker: slot.worker, pid: slot.pid, ...cluster });
      else unanswered.push({ worker: slot.worker, pid: slot.pid, error: answer.error });
    }
    const order = new Map<string, number>();
    for (const name of this.current.clusters.keys()) order.set(name, order.size);
    entries.sort((a, b) => (order.get(a.name) ?? order.size) - (order.get(b.name) ?? order.size) || a.worker - b.worker);
    return { clusters: entries, ...(unanswered.length > 0 ? { unanswered } : {}) };
  }

  async configView(): Promise<object> {
    const config = this.current;
    const answers = await this.ask<ConfigView>('config');
    const retiringListeners = new Set<string>();
    const retiringClusters = new Set<string>();
    for (const { answer } of answers) {
      if (!answer.ok) continue;
      for (const l of answer.value.retiring.listeners) retiringListeners.add(l);
      for (const c of answer.value.retiring.clusters) retiringClusters.add(c);
    }
    return {
      source: config.source,
      sha256: config.sha256,
      loadedAt: config.loadedAt.toISOString(),
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      lastReloadError: this.reloads.lastError ?? null,
      lastReload: this.reloads.lastOutcome ?? null,
      retiring: { listeners: [...retiringListeners], clusters: [...retiringClusters] },
      workers: answers.map(({ slot, answer }) => ({
        worker: slot.worker,
        pid: slot.pid,
        state: slot.state,
        sha256: slot.sha256,
        listeners: slot.listeners.map((l) => `${l.name}@${l.host}:${l.port}`),
        restarts: slot.restarts,
        lastExit: slot.lastExit,
        ...(answer.ok ? { retiring: answer.value.retiring } : { error: answer.error }),
      })),
      config: redactSecrets(config.document),
    };
  }
}

function adminAddress(config: SidecarConfig): string {
  return `${config.admin.host}:${config.admin.port}`;
}

/** Workers refusing for the same reason (a port in use refuses them all) are named together. */
function sameProblemsOnce(refusals: ReadonlyArray<{ slot: SlotView; errors: readonly ConfigError[] }>): Array<{ path: string; message: string }> {
  const byProblem = new Map<string, { path: string; message: string; workers: number[] }>();
  for (const { slot, errors } of refusals) {
    for (const e of errors) {
      const key = `${e.path}\u0000${e.message}`;
      const seen = byProblem.get(key) ?? { path: e.path, message: e.message, workers: [] };
      seen.workers.push(slot.worker);
      byProblem.set(key, seen);
    }
  }
  return [...byProblem.values()].map((p) => ({
    path: p.path,
    message: `${p.message} (${p.workers.length === 1 ? 'worker' : 'workers'} ${p.workers.join(', ')})`,
  }));
}

function sortViews(views: WorkerApplyView[]): WorkerApplyView[] {
  return views.sort((a, b) => a.worker - b.worker);
}
