import type http from 'node:http';
import { ExplainInputError, explainRequest, parseHeaderArgument, type ClusterLiveState } from '../router/explain';
import type { StateHolder } from '../proxy/state';
import { json, type AdminHandler, type AdminResponse } from './server';

/** `GET /explain?method=GET&url=/x&header=k:v` (header repeatable): the route a request would take, with the live state of its cluster. */
export function explainEndpoint(holder: StateHolder): AdminHandler {
  return (req: http.IncomingMessage): AdminResponse => {
    const query = new URL(req.url ?? '/', 'http://admin.invalid').searchParams;
    const url = query.get('url');
    if (url === null || url === '') return json(400, { error: 'BAD_REQUEST', message: 'give the request as ?method=GET&url=/path&header=name:value' });
    const state = holder.current;
    try {
      const headers = query.getAll('header').map(parseHeaderArgument);
      const explanation = explainRequest(state.config, { method: query.get('method') ?? 'GET', url, headers }, (name): ClusterLiveState | undefined => {
        const cluster = state.clusters.get(name);
        if (cluster === undefined) return undefined;
        return {
          breaker: cluster.breaker.state,
          retryBudgetAvailable: cluster.retryBudget.view().available,
          healthyEndpoints: cluster.endpoints.filter((e) => e.healthy).length,
        };
      });
      return json(200, explanation);
    } catch (error) {
      if (error instanceof ExplainInputError) return json(400, { error: 'BAD_REQUEST', message: error.message });
      throw error;
    }
  };
}
