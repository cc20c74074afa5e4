import type http from 'node:http';
import type { SidecarConfig } from '../config/types';
import { ExplainInputError, explainRequest, parseHeaderArgument, type LiveStateLookup } from '../router/explain';
import type { ClusterRuntime } from '../upstream/cluster';
import { json, type AdminHandler, type AdminResponse } from './server';

/** The live state `GET /explain` adds for a cluster of this process. */
export function liveStateOf(clusters: ReadonlyMap<string, ClusterRuntime>): LiveStateLookup {
  return (name) => {
    const cluster = clusters.get(name);
    if (cluster === undefined) return undefined;
    return {
      breaker: cluster.breaker.state,
      retryBudgetAvailable: cluster.retryBudget.view().available,
      healthyEndpoints: cluster.endpoints.filter((e) => e.healthy).length,
    };
  };
}

/**
 * `GET /explain?method=GET&url=/x&header=k:v` (header repeatable): the route a request would
 * take. `live` adds the state of its cluster now; a process without cluster runtimes (the
 * primary of worker processes) answers from the config alone.
 */
export function explainEndpoint(snapshot: () => { readonly config: SidecarConfig; readonly live: LiveStateLookup | undefined }): AdminHandler {
  return (req: http.IncomingMessage): AdminResponse => {
    const query = new URL(req.url ?? '/', 'http://admin.invalid').searchParams;
    const url = query.get('url');
    if (url === null || url === '') return json(400, { error: 'BAD_REQUEST', message: 'give the request as ?method=GET&url=/path&header=name:value' });
    const { config, live } = snapshot();
    try {
      const headers = query.getAll('header').map(parseHeaderArgument);
      return json(200, explainRequest(config, { method: query.get('method') ?? 'GET', url, headers }, live));
    } catch (error) {
      if (error instanceof ExplainInputError) return json(400, { error: 'BAD_REQUEST', message: error.message });
      throw error;
    }
  };
}
