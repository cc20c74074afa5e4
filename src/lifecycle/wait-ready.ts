import http from 'node:http';

export const DEFAULT_WAIT_READY_TIMEOUT_MS = 30_000;
/** Between two probes of /ready. */
export const WAIT_READY_INTERVAL_MS = 200;
/** One probe; a sidecar too busy to answer /ready in this long is not ready. */
export const WAIT_READY_PROBE_TIMEOUT_MS = 2_000;

export type WaitReadyResult =
  | { readonly ready: true; readonly waitedMs: number }
  /** `lastAnswer` says what the last probe got, e.g. `503 draining` or `connect ECONNREFUSED 127.0.0.1:9901`. */
  | { readonly ready: false; readonly waitedMs: number; readonly lastAnswer: string };

/**
 * Probes `${adminUrl}/ready` until it answers 200 or `timeoutMs` has passed. Each probe uses
 * a fresh connection (nothing kept alive, so the CLI exits as soon as it is done).
 */
export async function waitReady(adminUrl: string, timeoutMs: number = DEFAULT_WAIT_READY_TIMEOUT_MS): Promise<WaitReadyResult> {
  const startedAt = Date.now();
  const url = new URL('/ready', adminUrl);
  let lastAnswer = 'no answer yet';
  for (let probes = 0; ; probes++) {
    const left = timeoutMs - (Date.now() - startedAt);
    // The wait before this probe used up the time: a probe with no time left would only
    // report its own timeout instead of what the sidecar last said.
    if (probes > 0 && left <= 0) return { ready: false, waitedMs: Date.now() - startedAt, lastAnswer };
    const answer = await probe(url, Math.max(1, Math.min(WAIT_READY_PROBE_TIMEOUT_MS, left)));
    if (answer.status === 200) return { ready: true, waitedMs: Date.now() - startedAt };
    lastAnswer = answer.text;
    const remaining = timeoutMs - (Date.now() - startedAt);
    if (remaining <= 0) return { ready: false, waitedMs: Date.now() - startedAt, lastAnswer };
    await new Promise((resolve) => setTimeout(resolve, Math.min(WAIT_READY_INTERVAL_MS, remaining)));
  }
}

function probe(url: URL, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < 200) body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: `${res.statusCode} ${body.trim()}`.trim() }));
      res.on('error', (error) => resolve({ status: 0, text: error.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs}ms`)));
    req.on('error', (error) => resolve({ status: 0, text: error.message }));
  });
}
