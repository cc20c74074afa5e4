import type { ErrorCode } from '../errors';

/**
 * Envoy-style response flags for the access log and the SERVER span: a few letters that say
 * why a response is not simply the app's. Several may apply; they are joined with commas in
 * the order of this table (the README documents it).
 */
export const RESPONSE_FLAGS = {
  /** No route matched. */
  NR: 'no route matched',
  /** The sidecar could not connect to the upstream. */
  UF: 'upstream connection failure',
  /** The cluster's circuit breaker is open, or its concurrency limit was reached. */
  UO: 'upstream overflow: circuit open or concurrency limit',
  /** No endpoint of the cluster is healthy. */
  UH: 'no healthy upstream',
  /** The upstream did not answer in time. */
  UT: 'upstream request timeout',
  /** The upstream closed or reset the connection before a complete response. */
  UR: 'upstream connection reset',
  /** The upstream's response was not valid HTTP. */
  UPE: 'upstream protocol error',
  /** The request was retried and the last attempt still failed. */
  URX: 'upstream retry limit exceeded',
  /** The client went away before the response ended. */
  DC: 'downstream connection termination',
  /**
   * The route (or per-try) timeout came while the client was still sending its request body:
   * the sidecar answered 408 and nothing was counted against the app. (Envoy's DT is its
   * downstream duration timeout, which also answers 408.)
   */
  DT: 'downstream request timeout: the client did not send its whole request in time',
  /** The client read nothing for the route timeout while the response waited on it; the sidecar cut it. */
  SI: 'stream idle: the client stopped reading',
  /** The request was malformed or refused (a method never forwarded, too many headers), or its body larger than the route allows. */
  DPE: 'downstream protocol error',
} as const;

export type ResponseFlag = keyof typeof RESPONSE_FLAGS;

const FLAG_OF_ERROR: Partial<Record<ErrorCode, ResponseFlag>> = {
  NO_ROUTE: 'NR',
  UPSTREAM_CONNECT_FAILURE: 'UF',
  CIRCUIT_OPEN: 'UO',
  OVERLOADED: 'UO',
  NO_HEALTHY_UPSTREAM: 'UH',
  UPSTREAM_TIMEOUT: 'UT',
  UPSTREAM_RESET: 'UR',
  UPSTREAM_PROTOCOL_ERROR: 'UPE',
  REQUEST_TIMEOUT: 'DT',
  BAD_REQUEST: 'DPE',
  METHOD_NOT_ALLOWED: 'DPE',
  REQUEST_TOO_LARGE: 'DPE',
  HEADERS_TOO_LARGE: 'DPE',
};

const UPSTREAM_FAILURES = new Set<ErrorCode>(['UPSTREAM_CONNECT_FAILURE', 'UPSTREAM_TIMEOUT', 'UPSTREAM_RESET', 'UPSTREAM_PROTOCOL_ERROR']);
const ORDER = Object.keys(RESPONSE_FLAGS) as ResponseFlag[];

export interface FlagFacts {
  /** The sidecar's error code of the response, if it answered or cut it itself. */
  readonly errorCode: ErrorCode | undefined;
  /** The status sent (or 499 when the client left before any). */
  readonly status: number;
  readonly attempts: number;
  readonly clientGone: boolean;
  /** The sidecar cut a client that stopped reading (it is then also gone, but did not leave on its own). */
  readonly clientStalled?: boolean;
}

/** The flags of one response, e.g. `UF,URX`; undefined when none applies. */
export function responseFlags(facts: FlagFacts): string | undefined {
  const flags = new Set<ResponseFlag>();
  const fromError = facts.errorCode === undefined ? undefined : FLAG_OF_ERROR[facts.errorCode];
  // A client that left is DC; the reset the sidecar then makes upstream is its consequence, not a UR.
  if (fromError !== undefined && !(facts.clientGone && fromError === 'UR')) flags.add(fromError);
  // With a sidecar error code, only upstream failures count: a 503 CIRCUIT_OPEN made no attempt fail.
  const lastAttemptFailed = facts.errorCode !== undefined ? UPSTREAM_FAILURES.has(facts.errorCode) : facts.status >= 500;
  if (facts.attempts > 1 && lastAttemptFailed && !facts.clientGone) flags.add('URX');
  if (facts.clientStalled === true) flags.add('SI');
  else if (facts.clientGone) flags.add('DC');
  if (flags.size === 0) return undefined;
  return ORDER.filter((flag) => flags.has(flag)).join(',');
}
