import type { ListedRequest, RequestsPage } from '../admin/requests-endpoint';
import type { RequestRecord } from '../telemetry/flight-recorder';

/**
 * GET /requests of a worker group: each worker records the requests it served; the primary
 * asks every worker with the same filter and merges the lists, most recent first, each entry
 * naming its worker. Within one worker the order is the worker's own (its recording order);
 * across workers it is the time each request arrived.
 */

export interface WorkerRequestsAnswer {
  readonly worker: number;
  readonly pid: number | null;
  /** undefined when the worker is down or did not answer; `error` says which. */
  readonly page: RequestsPage | undefined;
  readonly error?: string;
}

export function mergeRequestPages(answers: readonly WorkerRequestsAnswer[], limit: number | undefined): RequestsPage {
  let requests = 0;
  let failures = 0;
  let bytes = 0;
  const lists: Array<{ readonly worker: number; readonly records: readonly RequestRecord[]; next: number }> = [];
  const unanswered: Array<{ worker: number; pid: number | null; error: string }> = [];
  for (const answer of answers) {
    if (answer.page === undefined) {
      unanswered.push({ worker: answer.worker, pid: answer.pid, error: answer.error ?? `worker ${answer.worker} did not answer` });
      continue;
    }
    requests += answer.page.kept.requests;
    failures += answer.page.kept.failures;
    bytes += answer.page.bytes;
    lists.push({ worker: answer.worker, records: answer.page.requests, next: 0 });
  }
  const merged: ListedRequest[] = [];
  const wanted = limit ?? Number.POSITIVE_INFINITY;
  // A k-way merge of lists that are each newest first: keeps each worker's own order.
  while (merged.length < wanted) {
    let newest: (typeof lists)[number] | undefined;
    let newestAt = '';
    for (const list of lists) {
      const head = list.records[list.next];
      if (head === undefined) continue;
      // ISO 8601 times in UTC compare as strings.
      if (newest === undefined || head.at > newestAt) {
        newest = list;
        newestAt = head.at;
      }
    }
    if (newest === undefined) break;
    merged.push({ ...newest.records[newest.next], worker: newest.worker });
    newest.next++;
  }
  return { kept: { requests, failures }, bytes, requests: merged, ...(unanswered.length > 0 ? { unanswered } : {}) };
}

/** GET /requests/{id}: a client may send the same x-request-id to two workers; the most recent record is shown. */
export function newestRecord(found: ReadonlyArray<{ readonly worker: number; readonly record: RequestRecord | null }>): ListedRequest | undefined {
  let newest: ListedRequest | undefined;
  for (const { worker, record } of found) {
    if (record !== null && (newest === undefined || record.at > newest.at)) newest = { ...record, worker };
  }
  return newest;
}
