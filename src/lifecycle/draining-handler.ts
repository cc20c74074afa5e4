import { recordLocalAnswer, type RequestHandler } from '../listener/handler';
import { requestIdFrom } from '../proxy/headers';
import { sendError } from '../proxy/respond';
import type { ListenerIdentity, ProxyServices } from '../proxy/state';
import { noopRequestTrace } from '../telemetry/tracing';

/**
 * The handler of a listener a reload removed, for the requests that still arrive on its
 * kept-alive connections while it drains: its routes no longer exist, so the honest answer
 * is 503 DRAINING with `Connection: close` (the client's next connection goes wherever the
 * new config says), never a misleading NO_ROUTE.
 */
export function createDrainingHandler(listener: ListenerIdentity, services: ProxyServices): RequestHandler {
  return function answerDraining(req, res) {
    const startedAt = performance.now();
    const requestId = requestIdFrom(req.headers['x-request-id']);
    sendError(res, 'DRAINING', requestId, `listener ${listener.name} was removed by a configuration reload and is closing; connect again`, { close: true });
    recordLocalAnswer(services, listener, res, req, requestId, noopRequestTrace(), startedAt, 'DRAINING', undefined);
  };
}
