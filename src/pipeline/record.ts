import type { ErrorCode } from '../core/errors';
import { isFailure, type AttemptRecord, type FlightRecorder, type RecordedExchange } from '../telemetry/flight-recorder';
import { responseFlags } from '../telemetry/response-flags';
import type { AttemptFailure } from '../upstream/error-map';
import type { AttemptControl } from './context';
import type { Exchange } from './exchange';
import { Interceptor } from './interceptor';

/**
 * The flight recorder's step (only in the HTTP chains of a config with `admin.recorder` on), right
 * above the terminal: it sees every attempt start and every attempt's answer before the retry
 * step swallows it, and on `onEnd` hands the exchange's timeline to the recorder. With the
 * recorder off it is not in the chain and nothing is kept per request.
 */
export class RecordInterceptor extends Interceptor {
  dispatch(x: Exchange): void {
    this.next!.dispatch(x);
  }

  override onAttemptStart(x: Exchange): void {
    (x.recordedAttempts ??= []).push({
      attempt: x.attempt,
      endpoint: x.endpoint?.config.url ?? '',
      startMs: round(x.attemptStartedAt - x.startedAt),
      durationMs: null,
      outcome: null,
      retryReason: x.retryReason ?? null,
      backoffMs: x.attempt > 1 ? x.backoffMs : 0,
    });
    this.up!.onAttemptStart(x);
  }

  override onResponse(x: Exchange, handler: AttemptControl, statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    attemptAnswered(x, String(statusCode));
    return this.up!.onResponse(x, handler, statusCode, rawHeaders, resume, statusText);
  }

  override onFailure(x: Exchange, failure: AttemptFailure): void {
    attemptAnswered(x, failure.kind);
    this.up!.onFailure(x, failure);
  }

  override onRefused(x: Exchange, code: ErrorCode, message: string): void {
    (x.recordedDecisions ??= []).push(`${code}: ${message}`);
    this.up!.onRefused(x, code, message);
  }

  override onEnd(x: Exchange): void {
    this.next!.onEnd(x);
    const recorder = x.services.recorder;
    if (recorder !== undefined) record(x, recorder);
  }
}

function attemptAnswered(x: Exchange, outcome: string): void {
  const current = x.recordedAttempts?.at(-1);
  if (current === undefined || current.outcome !== null) return;
  current.outcome = outcome;
  current.durationMs = round(performance.now() - x.startedAt - current.startMs);
}

function record(x: Exchange, recorder: FlightRecorder): void {
  const now = performance.now();
  const status = x.clientGone && !x.responseStarted ? 499 : x.status;
  const decisions = decisionsOf(x);
  const flags = responseFlags({ errorCode: x.errorCode, status, attempts: x.attempt, clientGone: x.clientGone, clientStalled: x.clientStalled });
  const entry: RecordedExchange = {
    requestId: x.requestId,
    atMs: Date.now() - (now - x.startedAt),
    method: x.req.method ?? '',
    path: x.req.url ?? '',
    host: hostHeaderOf(x.req.headers.host ?? x.req.headers[':authority']),
    listener: x.listener.name,
    route: x.route.name,
    cluster: x.cluster.config.name,
    status,
    error: x.errorCode ?? null,
    flags: flags ?? null,
    durationMs: round(now - x.startedAt),
    bytesIn: x.bytesIn,
    bytesOut: x.bytesOut,
    attempts: x.recordedAttempts ?? NO_ATTEMPTS,
    decisions,
    // The recorder writes these out at once (redacting them when read), so nothing here is kept.
    requestHeaders: x.req.rawHeaders,
    responseHeaders: x.relayedHeaders ?? NO_HEADERS,
  };
  // A failure whose answer came from the sidecar has no attempt decision to show otherwise.
  if (isFailure(entry) && decisions.length === 0 && x.errorCode !== undefined && x.attempt === 0) {
    recorder.record({ ...entry, decisions: [`answered ${x.errorCode} before any attempt`] });
  } else {
    recorder.record(entry);
  }
}

/** The policies' decisions in order; most requests have none and share one empty list. */
function decisionsOf(x: Exchange): readonly string[] {
  const noted = x.recordedDecisions;
  const retried = x.attempt > 1;
  if (noted === undefined && !x.waitedForSlot && x.errorCode !== 'CIRCUIT_OPEN' && x.errorCode !== 'OVERLOADED' && x.retryDeclined === undefined && !retried) return NO_DECISIONS;
  const decisions = noted ?? [];
  if (x.waitedForSlot) decisions.unshift('concurrency: waited for a slot');
  if (x.errorCode === 'CIRCUIT_OPEN') decisions.unshift(`breaker: ${x.cluster.breaker.state}, refused`);
  else if (x.errorCode === 'OVERLOADED') decisions.push('concurrency: refused (OVERLOADED)');
  if (x.retryDeclined !== undefined) decisions.push(`retry: no (${x.retryDeclined})`);
  if (retried) decisions.push(`retry: ${x.attempt - 1} retries; budget left ${x.cluster.retryBudget.view().available}`);
  return decisions;
}

const NO_ATTEMPTS: readonly AttemptRecord[] = Object.freeze([]);
const NO_DECISIONS: readonly string[] = Object.freeze([]);
const NO_HEADERS: readonly string[] = Object.freeze([]);

/** As received; the recorder takes the port off and lower-cases it when read. */
function hostHeaderOf(value: string | string[] | undefined): string {
  return (Array.isArray(value) ? value[0] : value) ?? '';
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
