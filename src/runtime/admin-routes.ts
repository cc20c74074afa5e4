import { json, text, type AdminHandler, type AdminResponse } from '../admin/server';
import type { ConfigReloader } from '../lifecycle/reloader';

/** What the admin API reads from the running process: a single sidecar or a worker group's primary. */
export interface AdminControl {
  readonly reloader: ConfigReloader;
  /** `reason` is the body of a 503 on /ready ('draining', 'not ready', or which worker is behind). */
  readiness(): { readonly ready: boolean; readonly reason: string };
  configView(): unknown;
  metricsAnswer(): AdminResponse | Promise<AdminResponse>;
  stats(): unknown;
  clustersView(): unknown;
}

/**
 * The admin API's route table, one for both runtimes: an endpoint is added here once and
 * answered by each runtime's AdminControl.
 */
export function adminRoutes(control: AdminControl): Map<string, AdminHandler> {
  return new Map<string, AdminHandler>([
    ['GET /live', () => text(200, 'live\n')],
    ['GET /ready', () => {
      const { ready, reason } = control.readiness();
      return ready ? text(200, 'ready\n') : text(503, `${reason}\n`);
    }],
    ['GET /config', async () => json(200, await control.configView())],
    ['GET /metrics', () => control.metricsAnswer()],
    ['POST /reload', async () => {
      const outcome = await control.reloader.reload('admin');
      return json(outcome.result === 'rejected' ? 422 : 200, outcome);
    }],
    ['GET /stats', async () => json(200, await control.stats())],
    ['GET /clusters', async () => json(200, await control.clustersView())],
  ]);
}
