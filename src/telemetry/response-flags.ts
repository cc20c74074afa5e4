import { ERRORS, ERROR_CODES, type ErrorCode, type ErrorResponseFlag } from '../core/errors';

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
  /** The route's rate limit refused the request (429 RATE_LIMITED). */
  RL: 'rate limited',
  /** A fault was injected by the route's `fault` policy: a delay, an abort, or both. */
  FI: 'fault injected',
  /** The request was malformed or refused (a method never forwarded, too many headers), or its body larger than the route allows. */
  DPE: 'downstream protocol error',
  /** The route's authentication refused the request (no or bad credentials, or the external authorization service said no or could not be asked). */
  UAEX: 'unauthorized: authentication or external authorization refused the request',
  /** The route's access rules (addresses, client-certificate names) refused the client. */
  RBAC: 'access denied by the route\'s access rules',
} as const;

export type ResponseFlag = keyof typeof RESPONSE_FLAGS;

/** Read from the error catalogue; typed so that a flag it names but this table lacks fails to compile. */
const FLAG_OF_ERROR: Readonly<Record<ErrorCode, ResponseFlag | null>> = Object.fromEntries(
  ERROR_CODES.map((code) => [code, ERRORS[code].flag]),
) as Record<ErrorCode, ErrorResponseFlag | null>;

/** The codes an upstream attempt fails with (a failure kind other than the client's body). */
const UPSTREAM_FAILURES: ReadonlySet<ErrorCode> = new Set(ERROR_CODES.filter(isUpstreamFailure));
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
  /** The route's fault policy delayed or aborted the request. */
  readonly faultInjected?: boolean;
}

/** The flags of one response, e.g. `UF,URX`; undefined when none applies. */
export function responseFlags(facts: FlagFacts): string | undefined {
  // Most responses: no error code, one attempt or a status below 500, the client still there,
  // no fault. Answered before the set below is allocated (this runs for every request).
  if (facts.errorCode === undefined && !facts.clientGone && facts.faultInjected !== true && facts.clientStalled !== true && (facts.attempts <= 1 || facts.status < 500)) return undefined;
  const flags = new Set<ResponseFlag>();
  const fromError = facts.errorCode === undefined ? null : FLAG_OF_ERROR[facts.errorCode];
  // A client that left is DC; the reset the sidecar then makes upstream is its consequence, not a UR.
  if (fromError !== null && !(facts.clientGone && fromError === 'UR')) flags.add(fromError);
  // With a sidecar error code, only upstream failures count: a 503 CIRCUIT_OPEN made no attempt fail.
  const lastAttemptFailed = facts.errorCode !== undefined ? UPSTREAM_FAILURES.has(facts.errorCode) : facts.status >= 500;
  if (facts.attempts > 1 && lastAttemptFailed && !facts.clientGone) flags.add('URX');
  if (facts.faultInjected === true) flags.add('FI');
  if (facts.clientStalled === true) flags.add('SI');
  else if (facts.clientGone) flags.add('DC');
  if (flags.size === 0) return undefined;
  return ORDER.filter((flag) => flags.has(flag)).join(',');
}

function isUpstreamFailure(code: ErrorCode): boolean {
  const kind = ERRORS[code].failureKind;
  return kind !== undefined && kind !== 'request-body';
}
