import { DASHBOARD_ROUTES } from '../admin/dashboard/assets';
import { requestEndpoint, requestsEndpoint } from '../admin/requests-endpoint';
import { json, text, type AdminHandler, type AdminResponse } from '../admin/server';
import type { SidecarConfig } from '../config/types';
import type { ConfigReloader } from '../lifecycle/reloader';
import type { StateHolder } from '../proxy/state';
import type { LiveStateLookup } from '../router/explain';
import type { FlightRecorder } from '../telemetry/flight-recorder';

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
  /** The flight recorder and the state it is read with; undefined where the workers record their own requests (/requests is then 404). */
  readonly recording: { readonly holder: StateHolder; readonly recorder: FlightRecorder } | undefined;
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
        const recorder = running.admin.recorder === undefined ? undefined : control.recording?.recorder;
        const { previewReload } = require('../admin/reload-preview') as typeof import('../admin/reload-preview');
        const result = previewReload(running, body, recorder);
        return result.ok ? json(200, result.preview) : json(422, { dryRun: true, valid: false, errors: result.errors });
      }
      const outcome = await control.reloader.reload('admin');
      return json(outcome.result === 'rejected' ? 422 : 200, outcome);
    }],
    ['GET /stats', async () => json(200, await control.stats())],
    ['GET /clusters', async () => json(200, await control.clustersView())],
    ['GET /explain', (req, body) => explainHandler(control)(req, body)],
    ...DASHBOARD_ROUTES,
  ]);
  const recording = control.recording;
  if (recording !== undefined) {
    routes.set('GET /requests', requestsEndpoint(recording.holder, recording.recorder));
    routes.set('GET /requests/*', requestEndpoint(recording.holder, recording.recorder));
  }
  return routes;
}
