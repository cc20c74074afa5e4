/** Edits of the flat [name, value, ...] header list the app receives (proxy/headers.ts builds it; names are lower-case). */

/** Removes every header of `names` from a flat [name, value, ...] list (names are lower-case there). */
export function removeHeaders(headers: string[], names: ReadonlySet<string>): void {
  if (names.size === 0) return;
  let to = 0;
  for (let from = 0; from < headers.length; from += 2) {
    if (names.has(headers[from])) continue;
    headers[to++] = headers[from];
    headers[to++] = headers[from + 1];
  }
  headers.length = to;
}

/** Adds a header before the last entry pair, which stays x-sidecar-attempt (proxy/headers.ts setAttempt rewrites it there). */
export function insertHeader(headers: string[], name: string, value: string): void {
  headers.splice(headers.length - 2, 0, name, value);
}
