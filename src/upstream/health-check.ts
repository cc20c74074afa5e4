import { Client } from 'undici';
import type { HealthCheckConfig } from '../config/types';
import type { EndpointRuntime } from './cluster';

export type HealthStatus = 'unchecked' | 'healthy' | 'unhealthy';

export interface HealthView {
  readonly status: HealthStatus;
  readonly consecutiveFailures: number;
  readonly consecutiveSuccesses: number;
  readonly checks: number;
  readonly failedChecks: number;
  readonly lastCheckAt: string | null;
  readonly lastFailure: string | null;
}

/**
 * What active health checks know of one endpoint. An endpoint starts `unchecked` and takes
 * traffic (a sidecar is usually started together with its app: refusing every request until
 * the first check passes would turn a slow start into errors). `unhealthyThreshold`
 * consecutive failed checks make it `unhealthy`; `healthyThreshold` consecutive passed ones
 * make it `healthy` again; its first passed check makes an `unchecked` endpoint healthy.
 */
export class EndpointHealth {
  status: HealthStatus = 'unchecked';
  consecutiveFailures = 0;
  consecutiveSuccesses = 0;
  checks = 0;
  failedChecks = 0;
  lastCheckAt: number | undefined;
  lastFailure: string | undefined;

  /** Records one check; true when the status changed. */
  record(passed: boolean, failure: string | undefined, config: HealthCheckConfig, nowMs: number): boolean {
    this.checks++;
    this.lastCheckAt = nowMs;
    const before = this.status;
    if (passed) {
      this.consecutiveFailures = 0;
      this.consecutiveSuccesses++;
      if (this.status === 'unchecked' || (this.status === 'unhealthy' && this.consecutiveSuccesses >= config.healthyThreshold)) {
        this.status = 'healthy';
      }
    } else {
      this.failedChecks++;
      this.lastFailure = failure;
      this.consecutiveSuccesses = 0;
      this.consecutiveFailures++;
      if (this.status !== 'unhealthy' && this.consecutiveFailures >= config.unhealthyThreshold) this.status = 'unhealthy';
    }
    return this.status !== before;
  }

  view(): HealthView {
    return {
      status: this.status,
      consecutiveFailures: this.consecutiveFailures,
      consecutiveSuccesses: this.consecutiveSuccesses,
      checks: this.checks,
      failedChecks: this.failedChecks,
      lastCheckAt: this.lastCheckAt === undefined ? null : new Date(this.lastCheckAt).toISOString(),
      lastFailure: this.lastFailure ?? null,
    };
  }
}

export interface HealthCheckEvents {
  /** Every check, passed or not. */
  checked(endpoint: EndpointRuntime, passed: boolean): void;
  /** The endpoint's health status changed. */
  changed(endpoint: EndpointRuntime, failure: string | undefined): void;
}

const USER_AGENT = 'sidecar-health-check';

/**
 * Active health checks of a cluster: each endpoint is sent `GET path` every `interval` (the
 * next check is timed from the end of the previous one, so checks of a slow app never pile
 * up); a 2xx within `timeout` passes. Checks use their own connection per endpoint, so a pool
 * saturated by traffic cannot make a live app look dead. Timers are unref'd and `stop` clears
 * all of them, aborts checks in flight and closes the connections.
 */
export class HealthChecker {
  private readonly probes = new Map<EndpointRuntime, EndpointProbe>();
  private started = false;

  constructor(
    private readonly config: HealthCheckConfig,
    endpoints: readonly EndpointRuntime[],
    private readonly events: HealthCheckEvents,
  ) {
    for (const endpoint of endpoints) this.probes.set(endpoint, new EndpointProbe(endpoint, config, events));
  }

  start(): void {
    this.started = true;
    for (const probe of this.probes.values()) probe.schedule(0);
  }

  /** An endpoint joined the cluster (a new address of a named endpoint); checked at once when checks run. */
  add(endpoint: EndpointRuntime): void {
    if (this.probes.has(endpoint)) return;
    const probe = new EndpointProbe(endpoint, this.config, this.events);
    this.probes.set(endpoint, probe);
    if (this.started) probe.schedule(0);
  }

  /** An endpoint left the cluster: its checks stop. */
  remove(endpoint: EndpointRuntime): void {
    this.probes.get(endpoint)?.stop();
    this.probes.delete(endpoint);
  }

  stop(): void {
    this.started = false;
    for (const probe of this.probes.values()) probe.stop();
  }
}

class EndpointProbe {
  private timer: NodeJS.Timeout | undefined;
  private inFlight: AbortController | undefined;
  private client: Client | undefined;
  private stopped = false;

  constructor(
    private readonly endpoint: EndpointRuntime,
    private readonly config: HealthCheckConfig,
    private readonly events: HealthCheckEvents,
  ) {}

  schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(runProbe, delayMs, this);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.inFlight?.abort();
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) client.destroy().catch(() => undefined);
  }

  async check(): Promise<void> {
    this.timer = undefined;
    if (this.stopped) return;
    const controller = new AbortController();
    this.inFlight = controller;
    const deadline = setTimeout(abortCheck, this.config.timeoutMs, controller);
    deadline.unref();
    let failure: string | undefined;
    try {
      const response = await this.connection().request({
        path: this.config.path,
        method: 'GET',
        headers: { 'user-agent': USER_AGENT },
        signal: controller.signal,
      });
      await response.body.dump();
      if (response.statusCode < 200 || response.statusCode > 299) failure = `GET ${this.config.path} answered ${response.statusCode}`;
    } catch (error) {
      failure = controller.signal.aborted
        ? `GET ${this.config.path} got no answer within ${this.config.timeoutMs}ms`
        : `GET ${this.config.path} failed: ${error instanceof Error ? error.message : String(error)}`;
    } finally {
      clearTimeout(deadline);
      this.inFlight = undefined;
    }
    if (this.stopped) return;
    const passed = failure === undefined;
    this.events.checked(this.endpoint, passed);
    if (this.endpoint.health.record(passed, failure, this.config, Date.now())) this.events.changed(this.endpoint, failure);
    this.schedule(this.config.intervalMs);
  }

  private connection(): Client {
    if (this.client === undefined) {
      this.client = new Client(this.endpoint.config.url, {
        connectTimeout: this.config.timeoutMs,
        // Kept open between checks when they are frequent; closed when they are not.
        keepAliveTimeout: this.config.intervalMs + this.config.timeoutMs,
        keepAliveMaxTimeout: this.config.intervalMs + this.config.timeoutMs,
        pipelining: 1,
        ...(this.endpoint.connector === undefined ? {} : { connect: this.endpoint.connector }),
      });
      this.client.on('connectionError', () => {});
    }
    return this.client;
  }
}

function runProbe(probe: EndpointProbe): void {
  void probe.check();
}

function abortCheck(controller: AbortController): void {
  controller.abort();
}
