/**
 * The one poll helper of the suite. Await an event where one exists (a 'close', a log line, a
 * reload outcome, a span); poll only states nothing announces (a gauge, a connection count,
 * an admin answer, a port that stops listening).
 */

/** Default bound of a wait: generous for a loaded 2-core machine, short enough to fail fast. */
export const WAIT_TIMEOUT_MS = 10_000;
/** How often the state is read while waiting. */
export const WAIT_INTERVAL_MS = 10;

/**
 * Resolves once `check` returns true; rejects after `timeoutMs` with "timed out after …ms
 * waiting for <what>", so a failure names the state that never came. `what` reads after
 * "waiting for", e.g. 'the circuit to open'.
 */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = WAIT_TIMEOUT_MS,
  intervalMs = WAIT_INTERVAL_MS,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
