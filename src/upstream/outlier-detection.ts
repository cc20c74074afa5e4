import type { OutlierDetectionConfig } from '../config/types';
import { OUTLIER_MAX_EJECTION_TIME_MS } from '../config/defaults';
import type { EndpointRuntime } from './cluster';

export interface EjectionView {
  readonly ejected: boolean;
  readonly until: string | null;
  readonly timesEjected: number;
  readonly consecutiveFailures: number;
  readonly ejections: number;
}

/** Passive health of one endpoint: its run of failed attempts and its ejections. */
export class EndpointEjection {
  ejected = false;
  /** Wall-clock ms when the current ejection ends. */
  ejectedUntil = 0;
  /** The multiplier of the next ejection's time; it decays while the endpoint behaves. */
  timesEjected = 0;
  consecutiveFailures = 0;
  /** Every ejection since the cluster was created. */
  ejections = 0;
  returnedAt = 0;
  timer: NodeJS.Timeout | undefined;

  view(): EjectionView {
    return {
      ejected: this.ejected,
      until: this.ejected ? new Date(this.ejectedUntil).toISOString() : null,
      timesEjected: this.timesEjected,
      consecutiveFailures: this.consecutiveFailures,
      ejections: this.ejections,
    };
  }
}

export interface OutlierEvents {
  ejected(endpoint: EndpointRuntime, durationMs: number): void;
  returned(endpoint: EndpointRuntime): void;
}

/**
 * Outlier detection (Envoy's consecutive 5xx): an endpoint whose last `consecutive5xx`
 * attempts all failed (5xx response, connect failure, reset or timeout) is ejected for
 * `baseEjectionTime` × the number of times it was ejected (at most 5 minutes), then returns.
 * The multiplier decays by one for every `baseEjectionTime` the endpoint stays in, so an
 * endpoint that failed once long ago is not punished as a repeat offender.
 *
 * The last endpoint that can take traffic is never ejected: with nowhere else to send the
 * request, ejecting it would only turn the app's errors into NO_HEALTHY_UPSTREAM for every
 * request (a whole-cluster outage is the circuit breaker's job).
 */
export class OutlierDetector {
  /** The cluster's endpoints now (a named endpoint's addresses come and go). */
  private readonly endpoints: () => readonly EndpointRuntime[];

  constructor(
    private readonly config: OutlierDetectionConfig,
    endpoints: readonly EndpointRuntime[] | (() => readonly EndpointRuntime[]),
    private readonly events: OutlierEvents,
    private readonly clock: () => number = Date.now,
  ) {
    this.endpoints = typeof endpoints === 'function' ? endpoints : () => endpoints;
  }

  /** One attempt's result on `endpoint`: `failed` for 5xx, connect failure, reset, timeout. */
  record(endpoint: EndpointRuntime, failed: boolean): void {
    const state = endpoint.ejection;
    if (!failed) {
      state.consecutiveFailures = 0;
      return;
    }
    state.consecutiveFailures++;
    if (state.ejected || state.consecutiveFailures < this.config.consecutive5xx) return;
    if (!this.endpoints().some((other) => other !== endpoint && other.healthy)) return;
    this.eject(endpoint);
  }

  /** Clears every ejection timer (the cluster is closing). */
  stop(): void {
    for (const endpoint of this.endpoints()) this.forget(endpoint);
  }

  /** Clears the endpoint's ejection timer (it left the cluster). */
  forget(endpoint: EndpointRuntime): void {
    const state = endpoint.ejection;
    if (state.timer !== undefined) clearTimeout(state.timer);
    state.timer = undefined;
  }

  private eject(endpoint: EndpointRuntime): void {
    const state = endpoint.ejection;
    const now = this.clock();
    const base = this.config.baseEjectionTimeMs;
    if (state.timesEjected > 0) state.timesEjected = Math.max(0, state.timesEjected - Math.floor((now - state.returnedAt) / base));
    state.timesEjected++;
    state.ejections++;
    const durationMs = Math.min(base * state.timesEjected, Math.max(base, OUTLIER_MAX_EJECTION_TIME_MS));
    state.ejected = true;
    state.ejectedUntil = now + durationMs;
    state.consecutiveFailures = 0;
    state.timer = setTimeout(returnEndpoint, durationMs, this, endpoint);
    state.timer.unref();
    endpoint.refreshHealthy();
    this.events.ejected(endpoint, durationMs);
  }

  /** The ejection time is up. */
  restore(endpoint: EndpointRuntime): void {
    const state = endpoint.ejection;
    state.timer = undefined;
    state.ejected = false;
    state.returnedAt = this.clock();
    endpoint.refreshHealthy();
    this.events.returned(endpoint);
  }
}

function returnEndpoint(detector: OutlierDetector, endpoint: EndpointRuntime): void {
  detector.restore(endpoint);
}
