import type { ListenerConfig, RouteConfig, SidecarConfig } from '../config/types';
import type { Metrics } from '../telemetry/metrics/metrics';
import type { AccessLog } from '../telemetry/access-log';
import type { Logger } from '../telemetry/logger';
import type { Tracing } from '../telemetry/tracing';
import type { FlightRecorder } from '../telemetry/flight-recorder';
import type { ClusterRuntime } from '../upstream/cluster';

/**
 * Everything a request reads, as one immutable unit: a reload builds a new RuntimeState and
 * swaps the single reference in StateHolder, so a request that started on one state finishes
 * on it (its cluster runtimes stay open until their in-flight requests end).
 */
export interface RuntimeState {
  readonly config: SidecarConfig;
  readonly clusters: ReadonlyMap<string, ClusterRuntime>;
  /** Route tables by listener name. */
  readonly routes: ReadonlyMap<string, readonly RouteConfig[]>;
}

export interface StateHolder {
  readonly current: RuntimeState;
}

/** Process-wide services shared by every request. */
export interface ProxyServices {
  readonly metrics: Metrics;
  readonly accessLog: AccessLog;
  readonly logger: Logger;
  readonly tracing: Tracing;
  /** The flight recorder; undefined in processes that keep none. The chain records only when the config's admin.recorder is on. */
  readonly recorder?: FlightRecorder;
}

/** What a request needs to know of the listener it arrived on. */
export interface ListenerIdentity {
  readonly name: string;
  readonly proto: 'http' | 'https';
  readonly config: ListenerConfig;
}

export function buildRouteTables(config: SidecarConfig): ReadonlyMap<string, readonly RouteConfig[]> {
  return new Map(config.listeners.map((l) => [l.name, l.routes]));
}
