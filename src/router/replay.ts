import type { SidecarConfig } from '../config/types';
import { normalizePath, splitTarget } from '../core/path';
import { findRoute } from './route-table';

/** A recorded request, as much of it as routing reads. */
export interface ReplayedRequest {
  readonly listener: string;
  readonly method: string;
  /** As received: path and query. */
  readonly path: string;
  readonly host: string;
  readonly headers: Readonly<Record<string, string | readonly string[]>>;
}

export interface RouteMove {
  /** `listener/route`, or `listener/(no route)`. */
  readonly from: string;
  readonly to: string;
  readonly count: number;
}

export interface ReplayResult {
  /** Requests replayed (the recorder's recent ones). */
  readonly total: number;
  /** Of them, the requests the new table routes to another route (or to none). */
  readonly moved: number;
  /** Moves grouped by old → new route, largest first. */
  readonly moves: readonly RouteMove[];
  readonly summary: string;
}

const NO_ROUTE = '(no route)';

function routeName(config: SidecarConfig, request: ReplayedRequest, path: string): string {
  const listener = config.listeners.find((l) => l.name === request.listener);
  if (listener === undefined) return `${request.listener}/(listener removed)`;
  const route = findRoute(listener.routes, { method: request.method, path, host: request.host, headers: request.headers as Record<string, string | string[]> });
  return `${request.listener}/${route?.name ?? NO_ROUTE}`;
}

/**
 * Routes each request with the running table and the new one and counts the ones that land
 * elsewhere. Both sides are computed now, so a request recorded before an earlier reload is
 * compared on the running table, not the one it met. Pure.
 */
export function replayRoutes(running: SidecarConfig, next: SidecarConfig, requests: readonly ReplayedRequest[]): ReplayResult {
  const groups = new Map<string, RouteMove>();
  let total = 0;
  for (const request of requests) {
    const normalized = normalizePath(splitTarget(request.path).path);
    if (!normalized.ok) continue;
    total++;
    const from = routeName(running, request, normalized.path);
    const to = routeName(next, request, normalized.path);
    if (from === to) continue;
    const key = `${from}\n${to}`;
    const group = groups.get(key);
    groups.set(key, { from, to, count: (group?.count ?? 0) + 1 });
  }
  const moves = [...groups.values()].sort((a, b) => b.count - a.count);
  const moved = moves.reduce((n, m) => n + m.count, 0);
  return { total, moved, moves, summary: `${moved} of ${total} recent requests would route differently` };
}
