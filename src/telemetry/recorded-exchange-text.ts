import type { AttemptRecord, RecordedExchange } from './flight-recorder';

/**
 * A recorded exchange as one string of lines, for the flight recorder's byte rings: the
 * recorder keeps bytes outside the JavaScript heap instead of the exchange's objects, because
 * a thousand kept requests' header lists, strings and attempt objects survive the young
 * generation and every one of them was copied by the scavenger and then collected from the old
 * generation (measured in docs/PERFORMANCE.md, "The flight recorder's cost").
 *
 * Layout, one field a line: the request id, method, path, host, listener, route, cluster,
 * error, flags; the number of attempts, then seven lines for each (times in whole
 * microseconds); the number of decisions, then each; the length of the request's flat header
 * list, then its items; the same for the response's. Numbers the ring keeps in typed arrays (time, status, duration, sizes) are not
 * in the text. A null is an empty line (no route, cluster, error, flag or outcome is '').
 *
 * Invariant: no line may contain a line feed. Header names and values, the path, and the
 * method never do (Node's HTTP/1 parser ends a field at one, and HTTP/2 refuses them, RFC 9113
 * §8.2.1); every other string passes through `oneLine`.
 */

const ATTEMPT_LINES = 7;

export function exchangeToText(entry: RecordedExchange): string {
  const lines: (string | number)[] = [
    oneLine(entry.requestId),
    entry.method,
    entry.path,
    oneLine(entry.host),
    oneLine(entry.listener),
    oneLine(entry.route ?? ''),
    oneLine(entry.cluster ?? ''),
    entry.error ?? '',
    entry.flags ?? '',
    entry.attempts.length,
  ];
  for (const a of entry.attempts) {
    lines.push(a.attempt, oneLine(a.endpoint), micros(a.startMs), a.durationMs === null ? '' : micros(a.durationMs), oneLine(a.outcome ?? ''), oneLine(a.retryReason ?? ''), micros(a.backoffMs));
  }
  lines.push(entry.decisions.length);
  for (const decision of entry.decisions) lines.push(oneLine(decision));
  pushList(lines, entry.requestHeaders);
  pushList(lines, entry.responseHeaders);
  return lines.join('\n');
}

/** The numbers kept beside the text. */
export interface ExchangeNumbers {
  readonly atMs: number;
  readonly status: number;
  readonly durationMs: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

export function exchangeFromText(text: string, numbers: ExchangeNumbers): RecordedExchange {
  const lines = text.split('\n');
  let at = 0;
  const next = (): string => lines[at++] ?? '';
  const nullable = (): string | null => {
    const value = next();
    return value === '' ? null : value;
  };
  const requestId = next();
  const method = next();
  const path = next();
  const host = next();
  const listener = next();
  const route = nullable();
  const cluster = nullable();
  const error = nullable();
  const flags = nullable();
  const attempts: AttemptRecord[] = [];
  for (let n = Number(next()); n > 0 && at + ATTEMPT_LINES <= lines.length; n--) {
    const attempt = Number(next());
    const endpoint = next();
    const startMs = Number(next()) / 1000;
    const duration = nullable();
    attempts.push({ attempt, endpoint, startMs, durationMs: duration === null ? null : Number(duration) / 1000, outcome: nullable(), retryReason: nullable(), backoffMs: Number(next()) / 1000 });
  }
  const decisions = takeList(lines, at);
  at += decisions.length + 1;
  const requestHeaders = takeList(lines, at);
  at += requestHeaders.length + 1;
  const responseHeaders = takeList(lines, at);
  const { atMs, status, durationMs, bytesIn, bytesOut } = numbers;
  return { requestId, atMs, method, path, host, listener, route, cluster, status, error, flags, durationMs, bytesIn, bytesOut, attempts, decisions, requestHeaders, responseHeaders };
}

function pushList(lines: (string | number)[], list: readonly string[]): void {
  lines.push(list.length);
  for (let i = 0; i < list.length; i++) lines.push(list[i]);
}

/** The counted list starting at line `at` (its count, then its items). */
function takeList(lines: readonly string[], at: number): string[] {
  const count = Number(lines[at] ?? 0);
  return lines.slice(at + 1, at + 1 + (Number.isInteger(count) && count > 0 ? count : 0));
}

/**
 * Milliseconds as whole microseconds (the recorder rounds its times to them): an integer
 * prints without the shortest-decimal search that a fraction costs (~0.5-1 µs each in place).
 */
function micros(ms: number): number {
  return Math.round(ms * 1000);
}

/** Line feeds become spaces: a field is one line (see the invariant above). */
function oneLine(value: string): string {
  return value.includes('\n') ? value.replaceAll('\n', ' ') : value;
}
