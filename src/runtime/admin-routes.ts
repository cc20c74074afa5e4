import { DASHBOARD_ROUTES } from '../admin/dashboard/assets';
import { requestEndpoint, requestsEndpoint, type RequestLog } from '../admin/requests-endpoint';
import { json, text, type AdminHandler, type AdminResponse } from '../admin/server';
import type { SidecarConfig } from '../config/types';
import type { ConfigReloader } from '../lifecycle/reloader';
import type { LiveStateLookup } from '../router/explain';

/** What the admin API reads from the running process: a single sidecar or a worker group's primary. */
export interface AdminControl {
  readonly reloader: ConfigReloader;
  /** `reason` is the body of a 503 on /ready ('draining', 'not ready', or which worker is behind). */
  readiness(): { readonly ready: boolean; readonly reason: string };
  configView(): unknown;
  metricsAnswer(): AdminResponse | Promise<AdminResponse>;
  stats(): unknown;
  clustersView(): unknown;
  /** What /explain and a dry-run reload read: the running config, and the live breaker and budget state where it lives in this process (undefined in a worker group's primary). */
  explainSnapshot(): { readonly config: SidecarConfig; readonly live: LiveStateLookup | undefined };
  /** The recorded requests: this process's flight recorder, or every worker's in a worker group. */
  readonly recording: RequestLog;
}

/**
 * /explain and the dry-run reload load the router and the config loader only when asked: a
 * worker group's primary never loads the request path (test/integration/workers-start.test.ts).
 */
function explainHandler(control: AdminControl): AdminHandler {
  const { explainEndpoint } = require('../admin/explain-endpoint') as typeof import('../admin/explain-endpoint');
  return explainEndpoint(() => control.explainSnapshot());
}

/**
 * The admin API's route table, one for both runtimes: an endpoint is added here once and
 * answered by each runtime's AdminControl.
 */
export function adminRoutes(control: AdminControl): Map<string, AdminHandler> {
  const routes = new Map<string, AdminHandler>([
    ['GET /live', () => text(200, 'live\n')],
    ['GET /ready', () => {
      const { ready, reason } = control.readiness();
      return ready ? text(200, 'ready\n') : text(503, `${reason}\n`);
    }],
    ['GET /config', async () => json(200, await control.configView())],
    ['GET /metrics', () => control.metricsAnswer()],
    ['POST /reload', async (req, body) => {
      if (new URL(req.url ?? '/', 'http://admin.invalid').searchParams.get('dryRun') === 'true') {
        // Nothing is applied: the structural diff, and the recent requests replayed on both tables.
        const running = control.explainSnapshot().config;
        const recent = !control.recording.enabled() ? undefined : (await control.recording.list({})).requests;
        const { previewReload } = require('../admin/reload-preview') as typeof import('../admin/reload-preview');
        const result = previewReload(running, body, recent);
        return result.ok ? json(200, result.preview) : json(422, { dryRun: true, valid: false, errors: result.errors });
      }
      const outcome = await control.reloader.reload('admin');
      return json(outcome.result === 'rejected' ? 422 : 200, outcome);
    }],
    ['GET /stats', async () => json(200, await control.stats())],
    ['GET /clusters', async () => json(200, await control.clustersView())],
    ['GET /explain', (req, body) => explainHandler(control)(req, body)],
    ['GET /requests', requestsEndpoint(control.recording)],
    ['GET /requests/*', requestEndpoint(control.recording)],
    ...DASHBOARD_ROUTES,
  ]);
  return routes;
}
