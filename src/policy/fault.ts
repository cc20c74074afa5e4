import type { FaultPolicy } from '../config/types';

/** What the route's fault policy does to one request. */
export type FaultDecision = 'none' | 'delay' | 'abort' | 'delay-then-abort';

/**
 * The value of the fault header as a percentage that replaces the configured ones: a number
 * from 0 to 100; anything else (empty, `true`) keeps the configured percentages.
 */
export function headerPercent(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  const n = Number(value);
  return Number.isFinite(n) && n >= 0 && n <= 100 ? n : undefined;
}

/**
 * Whether a request is delayed and/or aborted. `eligible` is false for a request without the
 * policy's header (when it names one); `override` is the header's percentage, if it gave one.
 * `draw` returns a number in [0, 1), one call per configured fault (Math.random in production).
 * A delayed request that is also aborted is aborted after its delay, as Envoy does.
 */
export function decideFault(policy: FaultPolicy, eligible: boolean, override: number | undefined, draw: () => number): FaultDecision {
  if (!eligible) return 'none';
  const delay = policy.delay !== undefined && draw() * 100 < (override ?? policy.delay.percent);
  const abort = policy.abort !== undefined && draw() * 100 < (override ?? policy.abort.percent);
  if (delay) return abort ? 'delay-then-abort' : 'delay';
  return abort ? 'abort' : 'none';
}
