import type http from 'node:http';
import type { StateHolder } from '../proxy/state';
import type { FlightRecorder } from '../telemetry/flight-recorder';
import { json, type AdminHandler, type AdminResponse } from './server';

const STATUS_FILTER = /^(?:[1-5]xx|[1-5][0-9][0-9])$/i;
/** GET /requests lists at most this many unless ?limit= asks for fewer or more. */
export const DEFAULT_REQUESTS_LIMIT = 100;

function recorderOff(): AdminResponse {
  return json(404, { error: 'RECORDER_OFF', message: 'the flight recorder is off (admin.recorder: false)' });
}

/** `GET /requests?status=5xx&route=R&limit=N`: the recorded requests, most recent first. */
export function requestsEndpoint(holder: StateHolder, recorder: FlightRecorder): AdminHandler {
  return (req: http.IncomingMessage): AdminResponse => {
    if (holder.current.config.admin.recorder === undefined) return recorderOff();
    const query = new URL(req.url ?? '/', 'http://admin.invalid').searchParams;
    const status = query.get('status') ?? undefined;
    if (status !== undefined && !STATUS_FILTER.test(status)) return json(400, { error: 'BAD_REQUEST', message: `status is a class such as 5xx or a code such as 503, not ${JSON.stringify(status)}` });
    const limitText = query.get('limit');
    const limit = limitText === null ? DEFAULT_REQUESTS_LIMIT : Number(limitText);
    if (!Number.isInteger(limit) || limit <= 0) return json(400, { error: 'BAD_REQUEST', message: 'limit is a positive whole number' });
    const requests = recorder.list({ status, route: query.get('route') ?? undefined, limit });
    return json(200, { kept: recorder.size, bytes: recorder.sizeBytes, requests });
  };
}

/** `GET /requests/{x-request-id}`: one request's timeline. */
export function requestEndpoint(holder: StateHolder, recorder: FlightRecorder): AdminHandler {
  return (req: http.IncomingMessage): AdminResponse => {
    if (holder.current.config.admin.recorder === undefined) return recorderOff();
    const path = (req.url ?? '/').split('?')[0];
    let id: string;
    try {
      id = decodeURIComponent(path.slice(path.lastIndexOf('/') + 1));
    } catch {
      return json(400, { error: 'BAD_REQUEST', message: 'the request id is not valid percent-encoding' });
    }
    const entry = recorder.get(id);
    if (entry === undefined) return json(404, { error: 'NOT_FOUND', message: `no recorded request ${id} (the recorder keeps the last requests and failures only)` });
    return json(200, entry);
  };
}
