/**
 * The one catalogue of errors the sidecar answers itself. Each code has one entry holding all
 * its facts: a bound HTTP status, the default message, the access-log response flag, and (for
 * the codes an upstream attempt can fail with) the failure kind retry policies read. Responses
 * carry `x-sidecar-error: CODE` and a JSON body `{ error, message, requestId }`. Upstream and
 * socket errors are mapped to these codes in one place: `classifyUpstreamError` in
 * upstream/error-map.ts; response flags are described in telemetry/response-flags.ts.
 */

import { grpcStatusForHttpStatus, type GrpcStatusCode } from './grpc';

/** Why an upstream attempt failed before a response could be relayed. Retry policies read this. */
export type AttemptFailureKind = 'connect-failure' | 'tls-failure' | 'reset' | 'timeout' | 'protocol-error' | 'request-body';

/**
 * The Envoy-style response flags an error code sets (a subset of RESPONSE_FLAGS in
 * telemetry/response-flags.ts, which checks that each is one of its own).
 */
export type ErrorResponseFlag = 'NR' | 'UF' | 'UO' | 'UH' | 'UT' | 'UR' | 'UPE' | 'DT' | 'DPE' | 'RL' | 'FI' | 'UAEX' | 'RBAC';

export interface ErrorFacts {
  readonly status: number;
  /** Human-readable default message: what happened and what the operator can do. */
  readonly message: string;
  /** The access-log and span flag; null where none applies (a drain answer, an admin refusal). */
  readonly flag: ErrorResponseFlag | null;
  /** The attempt failure this code stands for; only on the codes an attempt can fail with. */
  readonly failureKind?: AttemptFailureKind;
  /**
   * The gRPC status a gRPC client is answered with (HTTP 200 + grpc-status). Without it, the
   * gRPC mapping of the HTTP status applies (core/grpc.ts grpcStatusForHttpStatus).
   */
  readonly grpcStatus?: GrpcStatusCode;
}

// gRPC status codes (core/grpc.ts GRPC_STATUS), written as numbers to keep this table free of imports.
const CATALOGUE = {
  NO_ROUTE: { status: 404, message: 'no route matches this request', flag: 'NR', grpcStatus: 12 },
  BAD_REQUEST: { status: 400, message: 'the request is malformed', flag: 'DPE', failureKind: 'request-body', grpcStatus: 13 },
  METHOD_NOT_ALLOWED: { status: 405, message: 'the sidecar never forwards this method', flag: 'DPE', grpcStatus: 12 },
  REQUEST_TIMEOUT: { status: 408, message: 'the client did not send a complete request in time', flag: 'DT', grpcStatus: 4 },
  REQUEST_TOO_LARGE: { status: 413, message: 'the request body is larger than the route allows', flag: 'DPE', grpcStatus: 8 },
  HEADERS_TOO_LARGE: {
    status: 431,
    message: 'the request headers are larger or more numerous than the listener allows',
    flag: 'DPE',
    grpcStatus: 8,
  },
  UPSTREAM_CONNECT_FAILURE: {
    status: 503,
    message: 'the upstream refused or did not accept the connection',
    flag: 'UF',
    failureKind: 'connect-failure',
    grpcStatus: 14,
  },
  UPSTREAM_TLS_FAILURE: {
    status: 502,
    message: 'the TLS handshake with the upstream failed: its certificate did not verify or it refused ours',
    flag: 'UF',
    failureKind: 'tls-failure',
    grpcStatus: 14,
  },
  UPSTREAM_RESET: {
    status: 502,
    message: 'the upstream closed the connection before a complete response',
    flag: 'UR',
    failureKind: 'reset',
    grpcStatus: 14,
  },
  UPSTREAM_PROTOCOL_ERROR: {
    status: 502,
    message: 'the upstream answered with malformed HTTP',
    flag: 'UPE',
    failureKind: 'protocol-error',
    grpcStatus: 13,
  },
  UPSTREAM_TIMEOUT: {
    status: 504,
    message: 'the upstream did not answer within the route timeout',
    flag: 'UT',
    failureKind: 'timeout',
    grpcStatus: 4,
  },
  CIRCUIT_OPEN: { status: 503, message: 'the circuit breaker of the cluster is open', flag: 'UO', grpcStatus: 14 },
  OVERLOADED: { status: 503, message: 'the cluster is at its concurrency limit', flag: 'UO', grpcStatus: 8 },
  NO_HEALTHY_UPSTREAM: { status: 503, message: 'no endpoint of the cluster is healthy', flag: 'UH', grpcStatus: 14 },
  EGRESS_DENIED: {
    status: 403,
    message: 'the forward proxy does not allow this destination (listeners[].forwardProxy.allow)',
    // A refused request, like a method never forwarded.
    flag: 'DPE',
    grpcStatus: 7,
  },
  RATE_LIMITED: { status: 429, message: 'the route\'s rate limit is reached for this client; retry after the Retry-After seconds', flag: 'RL', grpcStatus: 8 },
  /** The status is the route's `fault.abort.status` (this one is its default). */
  FAULT_ABORT: { status: 503, message: 'a fault was injected: the route\'s fault.abort answered instead of the app', flag: 'FI' },
  UNAUTHENTICATED: {
    status: 401,
    message: 'the request carries no valid credentials for this route',
    flag: 'UAEX',
    grpcStatus: 16,
  },
  ACCESS_DENIED: {
    status: 403,
    message: "the route's access rules refuse this client (its address or its certificate)",
    flag: 'RBAC',
    grpcStatus: 7,
  },
  AUTH_UNAVAILABLE: {
    status: 503,
    message: 'the external authorization service did not answer; the route denies requests it cannot check',
    flag: 'UAEX',
    grpcStatus: 14,
  },
  DRAINING: { status: 503, message: 'the sidecar is shutting down', flag: null, grpcStatus: 14 },
  ADMIN_FORBIDDEN: {
    status: 403,
    message: 'the admin API refuses requests for another host name or from another origin',
    flag: null,
    grpcStatus: 7,
  },
} as const satisfies Readonly<Record<string, ErrorFacts>>;

export type ErrorCode = keyof typeof CATALOGUE;

/** Every code's facts, e.g. `ERRORS.UPSTREAM_RESET.flag === 'UR'`. */
export const ERRORS: Readonly<Record<ErrorCode, ErrorFacts>> = CATALOGUE;

export const ERROR_CODES = Object.keys(CATALOGUE) as readonly ErrorCode[];

/** The status of each code, e.g. `ERROR_STATUS.NO_ROUTE === 404` (a literal type per code). */
export const ERROR_STATUS = mapCodes((code) => ERRORS[code].status) as { readonly [C in ErrorCode]: (typeof CATALOGUE)[C]['status'] };

/** The default message of each code. */
export const ERROR_MESSAGES: Readonly<Record<ErrorCode, string>> = mapCodes((code) => ERRORS[code].message);

/** An error the sidecar turns into its own response. `cause` keeps the original error. */
export class SidecarError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string = ERRORS[code].message, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SidecarError';
    this.code = code;
    this.status = ERRORS[code].status;
  }
}

export function errorBody(code: ErrorCode, message: string, requestId: string): string {
  return JSON.stringify({ error: code, message, requestId });
}

function mapCodes<T>(fact: (code: ErrorCode) => T): Readonly<Record<ErrorCode, T>> {
  return Object.freeze(Object.fromEntries(ERROR_CODES.map((code) => [code, fact(code)]))) as Record<ErrorCode, T>;
}

/** The gRPC status a gRPC client gets for this code. */
export function grpcStatusOf(code: ErrorCode): GrpcStatusCode {
  const facts = ERRORS[code];
  return facts.grpcStatus ?? grpcStatusForHttpStatus(facts.status);
}
