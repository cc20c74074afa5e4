import { errors } from 'undici';
import { SidecarError, type ErrorCode } from '../errors';
import { failedOnReusedConnection } from './connection-guard';

/** Why an upstream attempt failed before a response could be relayed. Retry policies read this. */
export type AttemptFailureKind = 'connect-failure' | 'reset' | 'timeout' | 'protocol-error' | 'request-body';

export interface AttemptFailure {
  readonly kind: AttemptFailureKind;
  readonly code: ErrorCode;
  readonly cause: unknown;
  /**
   * A reset of a connection that had carried an earlier response (kept alive and reused),
   * i.e. the stale keep-alive race. Only ever true for kind 'reset'.
   */
  readonly reusedConnection?: boolean;
}

const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

const RESET_ERRORS = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

const TIMEOUT_ERRORS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/** The one place where undici and socket errors become the sidecar's error codes. */
export function classifyUpstreamError(error: unknown): AttemptFailure {
  if (error instanceof SidecarError) {
    const kind: AttemptFailureKind =
      error.code === 'UPSTREAM_TIMEOUT' ? 'timeout'
      : error.code === 'UPSTREAM_CONNECT_FAILURE' ? 'connect-failure'
      // A 4xx of the sidecar's own catalogue raised while sending means the client's body failed.
      : error.status < 500 ? 'request-body'
      : 'reset';
    return { kind, code: error.code, cause: error };
  }
  // undici leaves `code` unset on many parser errors (malformed status line, bad Content-Length).
  if (error instanceof errors.HTTPParserError) return { kind: 'protocol-error', code: 'UPSTREAM_PROTOCOL_ERROR', cause: error };
  const code = errorCode(error);
  if (code !== undefined) {
    if (CONNECT_ERRORS.has(code)) return { kind: 'connect-failure', code: 'UPSTREAM_CONNECT_FAILURE', cause: error };
    if (RESET_ERRORS.has(code)) return { kind: 'reset', code: 'UPSTREAM_RESET', cause: error, reusedConnection: failedOnReusedConnection(error) };
    if (TIMEOUT_ERRORS.has(code)) return { kind: 'timeout', code: 'UPSTREAM_TIMEOUT', cause: error };
    if (code.startsWith('HPE_') || code === 'UND_ERR_HEADERS_OVERFLOW' || code === 'UND_ERR_INFO') {
      return { kind: 'protocol-error', code: 'UPSTREAM_PROTOCOL_ERROR', cause: error };
    }
    if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') return { kind: 'request-body', code: 'BAD_REQUEST', cause: error };
  }
  return { kind: 'reset', code: 'UPSTREAM_RESET', cause: error };
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // undici wraps some socket errors; the errno code is then on the cause.
  const cause = (error as { cause?: unknown }).cause;
  return cause === undefined || cause === error ? undefined : errorCode(cause);
}
