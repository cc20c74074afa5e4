import type http from 'node:http';
import type { StateHolder } from '../proxy/state';
import type { FlightRecorder, RecordFilter, RequestRecord } from '../telemetry/flight-recorder';
import { json, type AdminHandler, type AdminResponse } from './server';

const STATUS_FILTER = /^(?:[1-5]xx|[1-5][0-9][0-9])$/i;
/** GET /requests lists at most this many unless ?limit= asks for fewer or more. */
export const DEFAULT_REQUESTS_LIMIT = 100;

/** A recorded request, with the worker that served it in a worker group. */
export type ListedRequest = RequestRecord & { readonly worker?: number };

/** What `GET /requests` answers. */
export interface RequestsPage {
  readonly kept: { readonly requests: number; readonly failures: number };
  readonly bytes: number;
  /** Most recent first. */
  readonly requests: readonly ListedRequest[];
  /** Workers that did not answer: their requests are missing from the list. */
  readonly unanswered?: ReadonlyArray<{ readonly worker: number; readonly pid: number | null; readonly error: string }>;
}

/**
 * Where the recorded requests are read: this process's recorder, or in a worker group every
 * worker's, asked by the primary.
 */
export interface RequestLog {
  /** False when `admin.recorder: false`: /requests is then 404 RECORDER_OFF. */
  enabled(): boolean;
  list(filter: RecordFilter): RequestsPage | Promise<RequestsPage>;
  get(requestId: string): ListedRequest | undefined | Promise<ListedRequest | undefined>;
}

/** The recorder of this process (a single-process sidecar, or one worker). */
export function localRequestLog(holder: StateHolder, recorder: FlightRecorder): RequestLog {
  return {
    enabled: () => holder.current.config.admin.recorder !== undefined,
    list: (filter) => ({ kept: recorder.size, bytes: recorder.sizeBytes, requests: recorder.list(filter) }),
    get: (requestId) => recorder.get(requestId),
  };
}

function recorderOff(): AdminResponse {
  return json(404, { error: 'RECORDER_OFF', message: 'the flight recorder is off (admin.recorder: false)' });
}

/** The filter of `GET /requests?status=5xx&route=R&limit=N`, or the 400 that explains why not. */
export function requestsFilter(url: string): { readonly ok: true; readonly filter: RecordFilter } | { readonly ok: false; readonly response: AdminResponse } {
  const query = new URL(url, 'http://admin.invalid').searchParams;
  const status = query.get('status') ?? undefined;
  if (status !== undefined && !STATUS_FILTER.test(status)) {
    return { ok: false, response: json(400, { error: 'BAD_REQUEST', message: `status is a class such as 5xx or a code such as 503, not ${JSON.stringify(status)}` }) };
  }
  const limitText = query.get('limit');
  const limit = limitText === null ? DEFAULT_REQUESTS_LIMIT : Number(limitText);
  if (!Number.isInteger(limit) || limit <= 0) return { ok: false, response: json(400, { error: 'BAD_REQUEST', message: 'limit is a positive whole number' }) };
  return { ok: true, filter: { status, route: query.get('route') ?? undefined, limit } };
}

/** `GET /requests?status=5xx&route=R&limit=N`: the recorded requests, most recent first. */
export function requestsEndpoint(log: RequestLog): AdminHandler {
  return async (req: http.IncomingMessage): Promise<AdminResponse> => {
    if (!log.enabled()) return recorderOff();
    const parsed = requestsFilter(req.url ?? '/');
    if (!parsed.ok) return parsed.response;
    return json(200, await log.list(parsed.filter));
  };
}

/** `GET /requests/{x-request-id}`: one request's timeline. */
export function requestEndpoint(log: RequestLog): AdminHandler {
  return async (req: http.IncomingMessage): Promise<AdminResponse> => {
    if (!log.enabled()) return recorderOff();
    const path = (req.url ?? '/').split('?')[0];
    let id: string;
    try {
      id = decodeURIComponent(path.slice(path.lastIndexOf('/') + 1));
    } catch {
      return json(400, { error: 'BAD_REQUEST', message: 'the request id is not valid percent-encoding' });
    }
    const entry = await log.get(id);
    if (entry === undefined) return json(404, { error: 'NOT_FOUND', message: `no recorded request ${id} (the recorder keeps the last requests and failures only)` });
    return json(200, entry);
  };
}
