/**
 * The one graceful-shutdown sequence, shared by a single sidecar (sidecar.ts) and a worker
 * group's primary (workers/primary.ts), in the order load balancers need: /ready answers 503
 * at once; everything keeps serving for `drain.delay` (the time a load balancer takes to
 * notice); then serving stops and requests in flight get until `drain.timeout`; then what
 * is left is released and the admin listener closes. Each runtime supplies the stages; the
 * order, the delay, the deadline and the log lines are here.
 *
 * Type-only imports: the worker primary must not load the request path.
 */
import type { Logger } from '../telemetry/logger';

export interface DrainReport {
  /** Connections still busy at the drain deadline, cut. */
  readonly cutConnections: number;
  readonly durationMs: number;
}

export interface ServingStopped {
  readonly cutConnections: number;
  /** Added to the `drained` log line (e.g. the workers killed at their bound). */
  readonly logFields?: Readonly<Record<string, unknown>>;
}

/** What a runtime does at each step of the sequence. */
export interface DrainStages {
  /** Log fields of the first line (`delayMs` and `timeoutMs` are added). */
  readonly startFields: Readonly<Record<string, unknown>>;
  /** The first line: whether /ready answers 503 is the admin's to say. */
  readonly startMessage: string;
  /** The line once serving stops. */
  readonly stopMessage: string;
  readonly stopFields: () => Readonly<Record<string, unknown>>;
  /** At once: /ready answers 503, no reload starts any more (phase `draining`). */
  begin(): void;
  /** True when a non-graceful stop cut everything during the delay: the sequence ends there. */
  stoppedMeanwhile(): boolean;
  /** Settles once the config change running (if any) is done. */
  changesIdle(): Promise<unknown>;
  /** Stop accepting and wait for the requests in flight until `deadline` (epoch ms); busy connections then are cut. */
  stopServing(deadline: number): Promise<ServingStopped>;
  /** After serving ended, before the admin listener closes (pools, hooks); may use what is left until `deadline`. */
  release(deadline: number): Promise<void>;
  /** Last: the admin listener closes, logs are flushed. */
  close(): Promise<void>;
  /** Phase `stopped`. */
  end(): void;
}

export class DrainSequence {
  private running: Promise<DrainReport> | undefined;
  private cancelDelay: (() => void) | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly stages: DrainStages,
  ) {}

  /** Idempotent: a second call returns the first call's drain. */
  run(delayMs: number, timeoutMs: number): Promise<DrainReport> {
    this.running ??= this.sequence(delayMs, timeoutMs);
    return this.running;
  }

  /** Ends the drain delay early (a non-graceful stop during the drain). */
  skipDelay(): void {
    this.cancelDelay?.();
  }

  private async sequence(delayMs: number, timeoutMs: number): Promise<DrainReport> {
    const startedAt = Date.now();
    const stages = this.stages;
    stages.begin();
    this.logger.info({ delayMs, timeoutMs, ...stages.startFields }, stages.startMessage);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, delayMs);
      this.cancelDelay = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.cancelDelay = undefined;
    if (stages.stoppedMeanwhile()) return { cutConnections: 0, durationMs: Date.now() - startedAt };
    await stages.changesIdle();
    const deadline = Date.now() + timeoutMs;
    this.logger.info(stages.stopFields(), stages.stopMessage);
    const stopped = await stages.stopServing(deadline);
    const cutConnections = stopped.cutConnections;
    if (cutConnections > 0) this.logger.warn({ cutConnections }, 'drain.timeout reached: busy connections were cut');
    await stages.release(deadline);
    await stages.close();
    stages.end();
    const report = { cutConnections, durationMs: Date.now() - startedAt };
    this.logger.info({ ...report, ...stopped.logFields }, 'drained');
    return report;
  }
}
