import cluster, { type Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import type { SidecarConfig } from '../config/types';
import { settlesWithin } from '../core/async';
import type { Logger } from '../telemetry/logger';
import { WORKER_COUNT_ENV } from '../core/worker-group-size';
import { isWorkerMessage, WORKER_ID_ENV, type BoundListener, type PrimaryMessage, type WorkerMessage } from './protocol';

/** The first restart after a crash waits this long; each further crash in a row doubles it. */
export const WORKER_RESTART_BASE_DELAY_MS = 500;
/** However often a worker crashes, it is restarted at least this often. */
export const WORKER_RESTART_MAX_DELAY_MS = 30_000;
/** A worker that had been ready this long when it crashed starts the backoff over. */
export const WORKER_STABLE_AFTER_MS = 30_000;
/** A worker not ready this long after it was forked is killed (and restarted as a crash). */
export const WORKER_START_TIMEOUT_MS = 60_000;
/**
 * What a worker's drain may take beyond drain.timeout: closing its pools, flushing spans
 * (bounded by 5 s in the worker) and the access log. A worker still running then is killed.
 */
export const WORKER_DRAIN_EXTRA_MS = 10_000;

/** The wait before restarting a worker after its Nth crash in a row (N >= 1): doubling, capped. */
export function restartDelayMs(consecutiveCrashes: number): number {
  return Math.min(WORKER_RESTART_BASE_DELAY_MS * 2 ** Math.max(0, consecutiveCrashes - 1), WORKER_RESTART_MAX_DELAY_MS);
}

/**
 * Node's cluster scheduling (`NODE_CLUSTER_SCHED_POLICY`, when set, wins). `rr` (Node's
 * default on Linux): the primary accepts every connection and passes it to a worker over IPC;
 * `none`: the workers accept from the shared socket themselves.
 *
 * `none`, measured with 2 workers on a 2-core machine (README, Worker processes): over 64
 * keep-alive connections it serves as much or a little more (medians of three 10 s runs:
 * 23 500 req/s against 20 700; the runs overlap), and with a new connection per request
 * about twice as much (6 000 against 3 300, below one process's 4 500): under `rr` the
 * primary is a second hop for every connection, and one process doing it for all. It also
 * loses no connection when a worker dies: under `rr` a connection the primary was passing to
 * a worker that had just died is never answered (4 to 5 of 100 connections made right after
 * each of 5 worker kills hung), while under `none` the accept queue is shared and the live
 * workers take it. What `none` gives up: the kernel, not a turn, picks the worker that
 * accepts, so connections opened at the same moment can be spread unevenly (63/37 was seen;
 * sequential connections came out 53/47, 49/51, 38/62).
 */
export const DEFAULT_SCHEDULING_POLICY: 'rr' | 'none' = 'none';

/** starting: forked, not ready yet; ready: serving; stopping: asked to drain; down: no process (a restart may be due). */
export type SlotState = 'starting' | 'ready' | 'stopping' | 'down';

export interface SlotView {
  /** 1..workers, stable across restarts. */
  readonly worker: number;
  readonly pid: number | null;
  readonly state: SlotState;
  /** The config the worker runs (null until it is ready). */
  readonly sha256: string | null;
  readonly listeners: readonly BoundListener[];
  /** Restarts after crashes. */
  readonly restarts: number;
  readonly lastExit: { readonly code: number | null; readonly signal: string | null; readonly at: string } | null;
}

export type WorkerAnswer<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

export interface DrainOutcome {
  readonly cutConnections: number;
  /** Workers killed because they had not exited within the bound. */
  readonly killed: readonly number[];
}

export interface SupervisorEvents {
  /** A worker reported ready (after a start or a restart). */
  ready: [SlotView];
  /** A worker process ended, asked or not. */
  exit: [{ worker: number; pid: number }];
  /** A worker ended unasked; it is restarted after `delayMs`. */
  crash: [{ worker: number; pid: number; delayMs: number }];
}

interface Slot {
  readonly id: number;
  worker: Worker | undefined;
  state: SlotState;
  sha256: string | undefined;
  listeners: readonly BoundListener[];
  readyAt: number | undefined;
  restarts: number;
  consecutiveCrashes: number;
  restartTimer: NodeJS.Timeout | undefined;
  startTimer: NodeJS.Timeout | undefined;
  /** Kills a replaced worker whose drain overran. */
  stopTimer: NodeJS.Timeout | undefined;
  /** Why the running worker was asked to exit: its exit is then not a crash. */
  exitRequested: 'drain' | 'recycle' | undefined;
  startError: string | undefined;
  cutConnections: number;
  lastExit: SlotView['lastExit'];
}

interface Pending {
  readonly pid: number;
  readonly settle: (answer: WorkerAnswer<unknown>) => void;
}

let clusterConfigured = false;

/**
 * Forks the workers with node:cluster and keeps every slot filled: a worker that exits unasked
 * is restarted after a backoff that doubles with each crash in a row (a crash loop waits up
 * to WORKER_RESTART_MAX_DELAY_MS between tries instead of spinning). Requests to a worker are
 * answered or time out: a worker that is gone or stuck never holds the caller.
 */
export class WorkerSupervisor extends EventEmitter<SupervisorEvents> {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextRequestId = 1;
  private stopping = false;
  private startWaiters: { resolve: () => void; reject: (error: Error) => void } | undefined;

  constructor(
    count: number,
    /** The config a (re)started worker begins with: the group's current one. */
    private readonly configForStart: () => SidecarConfig,
    private readonly logger: Logger,
  ) {
    super();
    configureCluster();
    for (let id = 1; id <= count; id++) {
      this.slots.push({
        id,
        worker: undefined,
        state: 'down',
        sha256: undefined,
        listeners: [],
        readyAt: undefined,
        restarts: 0,
        consecutiveCrashes: 0,
        restartTimer: undefined,
        startTimer: undefined,
        stopTimer: undefined,
        exitRequested: undefined,
        startError: undefined,
        cutConnections: 0,
        lastExit: null,
      });
    }
  }

  /** Forks every worker; resolves once all are ready, rejects when one fails to start. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.startWaiters = { resolve, reject };
      for (const slot of this.slots) this.fork(slot);
    });
  }

  get size(): number {
    return this.slots.length;
  }

  views(): SlotView[] {
    return this.slots.map(view);
  }

  /** Slots with a worker that is serving. */
  readySlots(): SlotView[] {
    return this.slots.filter((s) => s.state === 'ready').map(view);
  }

  /** Asks one worker; the answer is its value, or why there is none (gone, no answer within `timeoutMs`, its error). */
  request<T>(worker: number, message: WorkerRequest, timeoutMs: number): Promise<WorkerAnswer<T>> {
    const slot = this.slots[worker - 1];
    const target = slot?.worker;
    if (target === undefined || !target.isConnected()) return Promise.resolve({ ok: false, error: `worker ${worker} is not running` });
    const pid = target.process.pid ?? 0;
    const id = this.nextRequestId++;
    return new Promise<WorkerAnswer<T>>((resolve) => {
      const timer = setTimeout(() => settle({ ok: false, error: `worker ${worker} (pid ${pid}) did not answer within ${timeoutMs}ms` }), timeoutMs);
      const settle = (answer: WorkerAnswer<unknown>): void => {
        if (!this.pending.delete(id)) return;
        clearTimeout(timer);
        resolve(answer as WorkerAnswer<T>);
      };
      this.pending.set(id, { pid, settle });
      this.send(target, { ...message, id } as PrimaryMessage, (error) => settle({ ok: false, error: `worker ${worker} (pid ${pid}): ${error.message}` }));
    });
  }

  /** A worker applied a config: it runs `sha256` with these listeners now. */
  applied(worker: number, pid: number | null, sha256: string, listeners: readonly BoundListener[]): void {
    const slot = this.slots[worker - 1];
    if (slot?.worker === undefined || slot.worker.process.pid !== pid) return;
    slot.sha256 = sha256;
    slot.listeners = listeners;
  }

  /** Whether the worker process `pid` still runs in this slot and was not asked to exit. */
  runs(worker: number, pid: number | null): boolean {
    const slot = this.slots[worker - 1];
    return slot?.worker !== undefined && slot.worker.process.pid === pid && slot.exitRequested === undefined;
  }

  /** Replaces a worker: it drains (within `timeoutMs`) and a new one starts with the current config. Not a crash. */
  recycle(worker: number, timeoutMs: number): void {
    const slot = this.slots[worker - 1];
    if (slot?.worker === undefined || slot.exitRequested !== undefined) return;
    slot.exitRequested = 'recycle';
    slot.state = 'stopping';
    const replaced = slot.worker;
    this.logger.warn({ worker, pid: replaced.process.pid }, 'replacing worker: it drains, and a new one starts with the running configuration');
    const kill = (): void => void replaced.process.kill('SIGKILL');
    slot.stopTimer = setTimeout(kill, timeoutMs + WORKER_DRAIN_EXTRA_MS);
    this.send(replaced, { kind: 'drain', timeoutMs }, kill);
  }

  /**
   * Every worker stops accepting and finishes its requests within `timeoutMs`, then exits; no
   * worker is restarted from now on. Workers still running after `boundMs` are killed.
   */
  async drain(timeoutMs: number, boundMs: number): Promise<DrainOutcome> {
    this.stopping = true;
    const running: Slot[] = [];
    for (const slot of this.slots) {
      if (slot.restartTimer !== undefined) clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
      if (slot.worker === undefined) continue;
      running.push(slot);
      slot.state = 'stopping';
      slot.exitRequested = 'drain';
      const worker = slot.worker;
      this.send(worker, { kind: 'drain', timeoutMs }, () => worker.process.kill('SIGKILL'));
    }
    const exits = running.map((slot) => (slot.worker === undefined ? Promise.resolve() : exited(slot.worker)));
    const killed: number[] = [];
    if (!(await settlesWithin(Promise.all(exits), boundMs))) {
      for (const slot of running) {
        if (slot.worker === undefined) continue;
        killed.push(slot.id);
        this.logger.error({ worker: slot.id, pid: slot.worker.process.pid, boundMs }, 'worker still running after the drain: killed');
        slot.worker.process.kill('SIGKILL');
      }
      await Promise.all(exits);
    }
    return { cutConnections: running.reduce((n, s) => n + s.cutConnections, 0), killed };
  }

  /** Kills every worker at once (a second stop signal, a failed start). */
  killAll(): void {
    this.stopping = true;
    for (const slot of this.slots) {
      if (slot.restartTimer !== undefined) clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
      slot.worker?.process.kill('SIGKILL');
    }
  }

  private fork(slot: Slot): void {
    slot.restartTimer = undefined;
    if (this.stopping) return;
    const worker = cluster.fork({ [WORKER_ID_ENV]: String(slot.id), [WORKER_COUNT_ENV]: String(this.size) });
    slot.worker = worker;
    slot.state = 'starting';
    slot.sha256 = undefined;
    slot.readyAt = undefined;
    slot.exitRequested = undefined;
    slot.startError = undefined;
    slot.cutConnections = 0;
    slot.startTimer = setTimeout(() => {
      slot.startError = `not ready within ${WORKER_START_TIMEOUT_MS}ms`;
      this.logger.error({ worker: slot.id, pid: worker.process.pid }, `worker not ready within ${WORKER_START_TIMEOUT_MS}ms: killed`);
      worker.process.kill('SIGKILL');
    }, WORKER_START_TIMEOUT_MS);
    worker.on('message', (message: unknown) => {
      if (isWorkerMessage(message)) this.onMessage(slot, worker, message);
    });
    // IPC errors (a send to a worker that just died) surface in the send callbacks and in 'exit'.
    worker.on('error', (error) => this.logger.debug({ worker: slot.id, err: error }, 'worker channel error'));
    worker.once('exit', (code, signal) => this.onExit(slot, worker, code, signal));
  }

  private onMessage(slot: Slot, worker: Worker, message: WorkerMessage): void {
    if (slot.worker !== worker) return;
    switch (message.kind) {
      case 'hello':
        this.send(worker, { kind: 'start', config: this.configForStart() }, () => worker.process.kill('SIGKILL'));
        return;
      case 'ready': {
        clearTimeout(slot.startTimer);
        if (slot.state === 'starting') slot.state = 'ready';
        slot.sha256 = message.sha256;
        slot.listeners = message.listeners;
        slot.readyAt = Date.now();
        this.logger.info({ worker: slot.id, pid: worker.process.pid }, 'worker ready');
        this.emit('ready', view(slot));
        if (this.startWaiters !== undefined && this.slots.every((s) => s.state === 'ready')) {
          this.startWaiters.resolve();
          this.startWaiters = undefined;
        }
        return;
      }
      case 'start-failed':
        slot.startError = message.error;
        return;
      case 'answer':
        this.pending.get(message.id)?.settle({ ok: true, value: message.value });
        return;
      case 'answer-error':
        this.pending.get(message.id)?.settle({ ok: false, error: `worker ${slot.id} (pid ${worker.process.pid}): ${message.error}` });
        return;
      case 'drained':
        slot.cutConnections = message.cutConnections;
        return;
    }
  }

  private onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    clearTimeout(slot.startTimer);
    clearTimeout(slot.stopTimer);
    const pid = worker.process.pid ?? 0;
    for (const pending of [...this.pending.values()]) if (pending.pid === pid) pending.settle({ ok: false, error: `worker ${slot.id} (pid ${pid}) exited` });
    const requested = slot.exitRequested;
    slot.worker = undefined;
    slot.state = 'down';
    slot.lastExit = { code, signal, at: new Date().toISOString() };
    this.emit('exit', { worker: slot.id, pid });
    if (this.stopping) return;
    if (this.startWaiters !== undefined) {
      // The group is not up yet: a worker that cannot start fails the whole start, as a bind
      // failure fails a single process.
      this.startWaiters.reject(new Error(slot.startError ?? `worker ${slot.id} exited (${signal ?? `code ${code}`}) before it was ready`));
      this.startWaiters = undefined;
      return;
    }
    if (requested === 'recycle') {
      this.fork(slot);
      return;
    }
    const stable = slot.readyAt !== undefined && Date.now() - slot.readyAt >= WORKER_STABLE_AFTER_MS;
    slot.consecutiveCrashes = stable ? 1 : slot.consecutiveCrashes + 1;
    slot.restarts++;
    const delayMs = restartDelayMs(slot.consecutiveCrashes);
    this.logger.error(
      { worker: slot.id, pid, code, signal, restarts: slot.restarts, restartInMs: delayMs, ...(slot.startError === undefined ? {} : { error: slot.startError }) },
      'worker exited unexpectedly: restarting it',
    );
    this.emit('crash', { worker: slot.id, pid, delayMs });
    slot.restartTimer = setTimeout(() => this.fork(slot), delayMs);
  }

  private send(worker: Worker, message: PrimaryMessage, onError: (error: Error) => void): void {
    try {
      if (!worker.isConnected()) {
        onError(new Error('its channel is closed'));
        return;
      }
      worker.send(message, undefined, (error: Error | null) => {
        if (error !== null) onError(error);
      });
    } catch (error) {
      onError(error instanceof Error ? error : new Error(String(error)));
    }
  }
}

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

/** A message that expects an answer, before the supervisor gives it its id. */
export type WorkerRequest = DistributiveOmit<Extract<PrimaryMessage, { id: number }>, 'id'>;

function view(slot: Slot): SlotView {
  return {
    worker: slot.id,
    pid: slot.worker?.process.pid ?? null,
    state: slot.state,
    sha256: slot.sha256 ?? null,
    listeners: slot.listeners,
    restarts: slot.restarts,
    lastExit: slot.lastExit,
  };
}

function exited(worker: Worker): Promise<void> {
  return new Promise((resolve) => {
    if (worker.process.exitCode !== null || worker.process.signalCode !== null) resolve();
    else worker.once('exit', () => resolve());
  });
}

/**
 * Once per process, before the first fork: the workers run worker-main.js (not the CLI), with
 * the primary's exec arguments (`--cpu-prof`, `--max-old-space-size`, ...; node:cluster gives
 * each worker its own `--inspect` port), and the IPC channel carries structured clones.
 */
function configureCluster(): void {
  if (clusterConfigured) return;
  clusterConfigured = true;
  if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) {
    cluster.schedulingPolicy = DEFAULT_SCHEDULING_POLICY === 'rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;
  }
  cluster.setupPrimary({
    exec: path.join(__dirname, 'worker-main.js'),
    args: [],
    execArgv: process.execArgv,
    serialization: 'advanced',
  });
}
