/*
 * The upstream request's header list is a flat `[name, value, ...]` array whose last entry is
 * always the attempt slot (`x-sidecar-attempt`, written by `upstreamRequestHeaders`): these
 * helpers rewrite it in place, once per attempt, without rebuilding the list.
 */

/** Rewrites the attempt number in the upstream header list. */
export function setAttempt(headers: string[], attempt: number): void {
  headers[headers.length - 1] = String(attempt);
}

/**
 * Replaces the `previousEntries` entries (names and values) just before the attempt slot of a
 * upstream header list with `entries`; returns how many entries are there
 * now. Each attempt writes its own trace context this way, and the attempt slot stays last.
 */
export function replaceBeforeAttempt(headers: string[], previousEntries: number, entries: readonly string[]): number {
  headers.splice(headers.length - 2 - previousEntries, previousEntries, ...entries);
  return entries.length;
}

/** RFC 6455 §4.1: a GET whose Upgrade header lists `websocket` (the upgrade entry and `explain` read it alike). */
export function asksWebSocketUpgrade(method: string | undefined, upgrade: string | string[] | undefined): boolean {
  if (method !== 'GET' || upgrade === undefined) return false;
  return (Array.isArray(upgrade) ? upgrade.join(',') : upgrade).split(',').some((token) => token.trim().toLowerCase() === 'websocket');
}
