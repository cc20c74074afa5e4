/**
 * The one catalogue of errors the sidecar answers itself. Each code has a stable name
 * and a bound HTTP status; responses carry `x-sidecar-error: CODE` and a JSON body
 * `{ error, message, requestId }`. Upstream and socket errors are mapped to these codes
 * in one place: `classifyUpstreamError` in upstream/error-map.ts.
 */

export const ERROR_STATUS = {
  NO_ROUTE: 404,
  BAD_REQUEST: 400,
  METHOD_NOT_ALLOWED: 405,
  REQUEST_TIMEOUT: 408,
  REQUEST_TOO_LARGE: 413,
  HEADERS_TOO_LARGE: 431,
  UPSTREAM_CONNECT_FAILURE: 503,
  UPSTREAM_RESET: 502,
  UPSTREAM_PROTOCOL_ERROR: 502,
  UPSTREAM_TIMEOUT: 504,
  CIRCUIT_OPEN: 503,
  OVERLOADED: 503,
  NO_HEALTHY_UPSTREAM: 503,
  DRAINING: 503,
  ADMIN_FORBIDDEN: 403,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export const ERROR_CODES = Object.keys(ERROR_STATUS) as ErrorCode[];

/** Human-readable default messages: what happened and what the operator can do. */
export const ERROR_MESSAGES: Readonly<Record<ErrorCode, string>> = {
  NO_ROUTE: 'no route matches this request',
  BAD_REQUEST: 'the request is malformed',
  METHOD_NOT_ALLOWED: 'the sidecar never forwards this method',
  REQUEST_TIMEOUT: 'the client did not send a complete request in time',
  REQUEST_TOO_LARGE: 'the request body is larger than the route allows',
  HEADERS_TOO_LARGE: 'the request headers are larger or more numerous than the listener allows',
  UPSTREAM_CONNECT_FAILURE: 'the upstream refused or did not accept the connection',
  UPSTREAM_RESET: 'the upstream closed the connection before a complete response',
  UPSTREAM_PROTOCOL_ERROR: 'the upstream answered with malformed HTTP',
  UPSTREAM_TIMEOUT: 'the upstream did not answer within the route timeout',
  CIRCUIT_OPEN: 'the circuit breaker of the cluster is open',
  OVERLOADED: 'the cluster is at its concurrency limit',
  NO_HEALTHY_UPSTREAM: 'no endpoint of the cluster is healthy',
  DRAINING: 'the sidecar is shutting down',
  ADMIN_FORBIDDEN: 'the admin API refuses requests for another host name or from another origin',
};

/** An error the sidecar turns into its own response. `cause` keeps the original error. */
export class SidecarError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string = ERROR_MESSAGES[code], options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SidecarError';
    this.code = code;
    this.status = ERROR_STATUS[code];
  }
}

export function errorBody(code: ErrorCode, message: string, requestId: string): string {
  return JSON.stringify({ error: code, message, requestId });
}
