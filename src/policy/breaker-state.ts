/**
 * The breaker's states and their metric values, apart from the breaker itself: the worker
 * primary reports states without loading opossum or anything else of the request path.
 */
export type BreakerState = 'closed' | 'half-open' | 'open';

/** The value of sidecar_circuit_state for each state. */
export const BREAKER_STATE_VALUE: Readonly<Record<BreakerState, number>> = { closed: 0, 'half-open': 1, open: 2 };
