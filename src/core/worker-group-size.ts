/**
 * How many worker processes serve this sidecar's listeners, as the primary forked them (1 for
 * a single process). Read from the environment the primary gives each worker, not from the
 * config: `workers` is read at start, and a reload that changes it does not change the group.
 */
export const WORKER_COUNT_ENV = 'SIDECAR_WORKER_COUNT';

export function workerGroupSize(): number {
  const count = Number(process.env[WORKER_COUNT_ENV]);
  return Number.isInteger(count) && count >= 1 ? count : 1;
}
