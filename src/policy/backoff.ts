import type { BackoffConfig } from '../config/types';

/** A number in [0, 1), as Math.random returns; injected by tests. */
export type RandomSource = () => number;

/**
 * Full-jitter exponential backoff: before retry N (1 for the first retry) wait a random time
 * in [0, (2^N − 1) · base), the range capped at `max`. Full jitter spreads the retries of many
 * clients that failed together instead of sending them back in synchronised waves.
 */
export function backoffDelayMs(retry: number, backoff: BackoffConfig, random: RandomSource = Math.random): number {
  const ceiling = Math.min((2 ** retry - 1) * backoff.baseMs, backoff.maxMs);
  return Math.floor(random() * ceiling);
}

/**
 * The wait before retry N: the app's Retry-After when it sent one (on 429 and 503), otherwise
 * the jittered backoff; either way never longer than `max`. Whether the wait still fits in
 * the route's deadline is the retry decision's question, not this one's.
 */
export function retryDelayMs(
  retry: number,
  backoff: BackoffConfig,
  retryAfterMs: number | undefined,
  random: RandomSource = Math.random,
): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, backoff.maxMs);
  return backoffDelayMs(retry, backoff, random);
}

const DELTA_SECONDS = /^\s*(\d{1,10})\s*$/;
/** Every HTTP-date form (IMF-fixdate, RFC 850, asctime) starts with a day name; Date.parse alone would take "1.5" for a date. */
const HTTP_DATE_START = /^\s*(Mon|Tue|Wed|Thu|Fri|Sat|Sun)/i;

/**
 * Retry-After (RFC 9110 §10.2.3) in ms from `nowMs`: delay-seconds or an HTTP-date (a date in
 * the past means "now"). undefined for anything else, so a malformed value falls back to the
 * usual backoff instead of stalling the request.
 */
export function parseRetryAfterMs(value: string, nowMs: number): number | undefined {
  const seconds = DELTA_SECONDS.exec(value);
  if (seconds !== null) return Number(seconds[1]) * 1000;
  if (!HTTP_DATE_START.test(value)) return undefined;
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

/** Retry-After is only meaningful on these statuses (RFC 9110 §10.2.3, RFC 6585 §4). */
export function statusCarriesRetryAfter(status: number): boolean {
  return status === 429 || status === 503;
}

const RETRY_AFTER = 'retry-after';

/** The Retry-After of undici's raw response headers, in ms from `nowMs`, if present and valid. */
export function retryAfterFromRawHeaders(rawHeaders: readonly Buffer[], nowMs: number): number | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (name.length === RETRY_AFTER.length && name.toString('latin1').toLowerCase() === RETRY_AFTER) {
      return parseRetryAfterMs(rawHeaders[i + 1].toString('latin1'), nowMs);
    }
  }
  return undefined;
}
