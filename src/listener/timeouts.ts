import type { ListenerConfig } from '../config/types';

/**
 * How often Node checks headersTimeout and requestTimeout. Node's default (30 s) would let a
 * slow client outlive a 10 s headersTimeout by up to 30 s; the checks walk the connection
 * list, which is cheap next to the descriptors a slowloris attack pins.
 */
const MAX_TIMEOUT_CHECK_INTERVAL_MS = 1_000;
const MIN_TIMEOUT_CHECK_INTERVAL_MS = 50;

export function timeoutCheckIntervalMs(config: Pick<ListenerConfig, 'headersTimeoutMs' | 'requestTimeoutMs'>): number {
  const shortest = config.requestTimeoutMs > 0 ? Math.min(config.headersTimeoutMs, config.requestTimeoutMs) : config.headersTimeoutMs;
  return Math.max(MIN_TIMEOUT_CHECK_INTERVAL_MS, Math.min(MAX_TIMEOUT_CHECK_INTERVAL_MS, Math.floor(shortest / 4)));
}
