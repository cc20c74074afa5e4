import type { RouteTraffic } from '../telemetry/metrics/traffic-window';
import type { RecentError } from '../telemetry/recent-errors';
import type { ClusterStatus, StatusReport } from './collect';

/** The `sidecar status` report as text for a terminal: every line fits `width` columns. */

export const STATUS_WIDTH_COLUMNS = 80;
export const BUSIEST_ROUTES_SHOWN = 8;
export const LAST_ERRORS_SHOWN = 5;
/** Where `field` values start: the name column (8) and a space. */
const FIELD_INDENT = ' '.repeat(9);

export function renderStatus(report: StatusReport, width: number = STATUS_WIDTH_COLUMNS): string {
  const s = report.stats;
  const out: string[] = [];
  const health = `${report.live ? 'live' : 'NOT LIVE'}, ${report.ready ? 'ready' : 'NOT READY'}`;
  out.push(`sidecar ${report.admin}  ${health}  pid ${s.pid}, up ${formatUptime(s.uptimeSeconds)}`);

  const config = s.config;
  out.push(field('config', config.source));
  out.push(field('', `sha256 ${config.sha256.slice(0, 12)}  loaded ${formatTime(config.loadedAt)}`));
  const reloads = `${config.reloads.success} ok, ${config.reloads.failure} rejected`;
  const at = config.lastReload.at ? ` at ${formatTime(config.lastReload.at)}` : '';
  if (config.lastReload.error !== null) {
    out.push(field('reloads', `${reloads}; the last one was REJECTED${at}:`));
    // The whole reason, wrapped: the line number and the fix are often at its end.
    for (const line of config.lastReload.error.split('\n')) out.push(...wrap(line, width, FIELD_INDENT));
  } else if (config.reloads.success + config.reloads.failure === 0) {
    out.push(field('reloads', 'none since start'));
  } else {
    out.push(field('reloads', `${reloads}; the last one was applied${at}`));
  }

  const tracing = s.tracing;
  if (tracing.exporter === 'none') {
    out.push(field('tracing', 'off'));
  } else {
    out.push(field('tracing', `${tracing.exporter}${tracing.endpoint ? ` → ${tracing.endpoint}` : ''}  service ${tracing.serviceName ?? '-'}`));
    const dropped = tracing.spans.droppedQueueFull + tracing.spans.droppedExportFailed;
    out.push(field('', `sampler ${tracing.sampler ?? '-'}; spans: ${tracing.spans.exported} exported, ${dropped} dropped`));
  }

  const recorder = report.recorder;
  if (recorder !== undefined && !recorder.on) out.push(field('recorder', 'off (admin.recorder: false)'));
  if (recorder?.on === true) {
    out.push(field('recorder', `${recorder.requests} recent requests kept, and ${recorder.failures} that ended in a 5xx or an error`));
    if (recorder.failures > 0) out.push(field('', `${report.admin}/requests?status=5xx`));
  }

  if (s.workers !== undefined) {
    const ready = s.workers.filter((w) => w.ready).length;
    const restarts = s.workers.reduce((n, w) => n + w.restarts, 0);
    out.push(field('workers', `${ready} ready of ${s.workers.length}; ${restarts} restart${restarts === 1 ? '' : 's'} after crashes`));
    for (const w of s.workers.filter((x) => !x.ready)) out.push(field('', `worker ${w.worker}${w.pid === null ? '' : ` (pid ${w.pid})`}: ${w.state}${w.error ? `, ${w.error}` : ''}`));
  }

  out.push('', 'LISTENERS');
  out.push(
    ...table(
      ['NAME', 'ADDRESS', 'PROTO', 'ROUTES', 'CONNECTIONS'],
      s.listeners.map((l) => [l.name, l.address, l.mtls ? 'mtls' : l.proto, String(l.routes), String(l.connections)]),
      { width, align: 'lllrr', shrink: 0 },
    ),
  );

  out.push('', 'CLUSTERS');
  if (report.clusters.length === 0) out.push('  (none)');
  else out.push(...renderClusters(report.clusters, width));

  out.push('', `BUSIEST ROUTES (last ${Math.max(s.trafficWindowSeconds, 1)}s)`);
  const routes = s.routes.slice(0, BUSIEST_ROUTES_SHOWN);
  if (routes.length === 0) out.push('  (no requests)');
  else out.push(...table(['ROUTE', 'CLUSTER', 'REQ/S', 'ERRORS', 'P99'], routes.map(routeRow), { width, align: 'llrrr', shrink: 0 }));

  const shown = s.recentErrors.slice(0, LAST_ERRORS_SHOWN);
  out.push('', `LAST ERRORS (${shown.length} shown, ${s.errorsTotal} since start)`);
  if (shown.length === 0) out.push('  (none)');
  const recorded = new Set(recorder?.on === true ? recorder.recordedErrors : []);
  for (const error of shown) out.push(...renderError(error, width, error.requestId !== undefined && recorded.has(error.requestId) ? report.admin : undefined));

  return out.flatMap((line) => line.split('\n')).map((line) => fit(line, width)).join('\n') + '\n';
}

/** One table row per cluster, each followed by its endpoints (priority pN when not 0). */
function renderClusters(clusters: readonly ClusterStatus[], width: number): string[] {
  const rows = clusters.map((cluster) => [
    cluster.name,
    cluster.breaker ?? '-',
    String(cluster.inFlight),
    formatRate(cluster.attemptsPerSecond),
    formatPercent(cluster.errorRate),
    `${cluster.endpoints.filter((e) => e.healthy).length}/${cluster.endpoints.length}`,
  ]);
  const lines = table(['NAME', 'BREAKER', 'IN FLIGHT', 'ATTEMPTS/S', 'ERRORS', 'HEALTHY'], rows, { width, align: 'llrrrr', shrink: 0 });
  const out = [lines[0]];
  clusters.forEach((cluster, i) => {
    out.push(lines[i + 1]);
    for (const endpoint of cluster.endpoints) {
      const state = [endpoint.health === 'unhealthy' ? 'UNHEALTHY' : endpoint.health, ...endpoint.notes].join(', ');
      const priority = endpoint.priority > 0 ? ` p${endpoint.priority}` : '';
      const facts =
        `${state}  in flight ${endpoint.inFlight}  conns ${endpoint.connections.busy} busy/${endpoint.connections.idle} idle` +
        `${endpoint.pending > 0 ? `  pending ${endpoint.pending}` : ''}  unanswered ${endpoint.failures}/${endpoint.requests}`;
      out.push(`    ${endpoint.url}${priority}`, `      ${facts}`);
    }
  });
  return out;
}

function routeRow(route: RouteTraffic): string[] {
  const name = route.route === '' ? `${route.listener}/(no route)` : `${route.listener}/${route.route}`;
  return [name, route.cluster || '-', formatRate(route.requestsPerSecond), formatPercent(route.errorRate), route.p99Ms === null ? '-' : formatMs(route.p99Ms)];
}

/**
 *   11-22 00:20:58Z  UPSTREAM_CONNECT_FAILURE 503  ingress/orders → dead
 *       GET /orders/42
 *       request d9970e76-ec6b-4421-9fec-d8823388e5dc
 *       trace a8341ad9a0e096b335a04d3b5c0e1f2a
 *       http://127.0.0.1:9901/requests/d9970e76-ec6b-4421-9fec-d8823388e5dc
 *
 * The last line, the request's timeline in the flight recorder, when `recorderAt` (the admin
 * URL) is given: the recorder has it.
 */
function renderError(error: RecentError, width: number, recorderAt: string | undefined): string[] {
  const route = error.listener === undefined ? '' : `${error.listener}/${error.route ?? '(no route)'}${error.cluster ? ` → ${error.cluster}` : ''}`;
  const lines = [`  ${formatTime(error.time).slice(5)}  ${error.code}${error.status ? ` ${error.status}` : ''}  ${route}`];
  if (error.method !== undefined && error.path !== undefined) lines.push(`      ${error.method} ${error.path}`);
  const ids = [error.requestId ? `request ${error.requestId}` : '', error.traceId ? `trace ${error.traceId}` : ''].filter(Boolean);
  if (ids.join('  ').length + 6 <= width) {
    if (ids.length > 0) lines.push(`      ${ids.join('  ')}`);
  } else {
    for (const id of ids) lines.push(`      ${id}`);
  }
  if (error.message) for (const line of error.message.split('\n')) lines.push(...wrap(line, width, '      '));
  if (recorderAt !== undefined && error.requestId !== undefined) {
    // A URL cut to the width would be a wrong one.
    const timeline = `      ${recorderAt}/requests/${encodeURIComponent(error.requestId)}`;
    lines.push(timeline.length <= width ? timeline : '      its timeline: GET /requests/{request id} on the admin listener');
  }
  return lines;
}

interface TableOptions {
  readonly width: number;
  /** One letter per column: l (left) or r (right). */
  readonly align: string;
  /** The column that is cut when the table is wider than `width`. */
  readonly shrink: number;
}

/** A table indented by two spaces, columns two spaces apart, cut to fit the width. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[], options: TableOptions): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const total = 2 + widths.reduce((a, b) => a + b, 0) + 2 * (widths.length - 1);
  if (total > options.width) widths[options.shrink] = Math.max(headers[options.shrink].length, widths[options.shrink] - (total - options.width));
  const line = (cells: readonly string[]): string =>
    '  ' +
    cells
      .map((cell, i) => {
        const text = fit(cell, widths[i]);
        return options.align[i] === 'r' ? text.padStart(widths[i]) : text.padEnd(widths[i]);
      })
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)];
}

function field(name: string, value: string): string {
  return `${name.padEnd(8)} ${value}`;
}

/**
 * `indent` + `text` in lines of at most `width` characters, broken at spaces where it can be
 * and inside a word only when the word alone is too long. Every line carries the indent.
 */
export function wrap(text: string, width: number, indent: string): string[] {
  const room = Math.max(width - indent.length, 1);
  const lines: string[] = [];
  let rest = text.trimEnd();
  while (rest.length > room) {
    const space = rest.lastIndexOf(' ', room);
    const cut = space > 0 ? space : room;
    lines.push(indent + rest.slice(0, cut).trimEnd());
    rest = rest.slice(cut).replace(/^ +/, '');
  }
  lines.push(indent + rest);
  return lines;
}

/** Cuts a line to `width` characters, marking the cut with an ellipsis. */
export function fit(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(width - 1, 0))}…`;
}

export function formatUptime(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3_600);
  const m = Math.floor((seconds % 3_600) / 60);
  const s = Math.floor(seconds % 60);
  if (d > 0) return `${d}d ${String(h).padStart(2, '0')}h`;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m ${String(s).padStart(2, '0')}s`;
  return `${s}s`;
}

/** `2026-05-01 12:03:04Z` */
function formatTime(iso: string): string {
  return iso.length >= 19 ? `${iso.slice(0, 10)} ${iso.slice(11, 19)}Z` : iso;
}

function formatRate(perSecond: number): string {
  return perSecond >= 100 ? perSecond.toFixed(0) : perSecond.toFixed(2);
}

export function formatPercent(rate: number | null): string {
  return rate === null ? '-' : `${(rate * 100).toFixed(1)}%`;
}

export function formatMs(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)}s`;
  if (ms >= 10) return `${ms.toFixed(0)}ms`;
  return `${ms.toFixed(2)}ms`;
}
