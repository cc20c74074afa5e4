import { errors } from 'undici';
import { ERRORS, ERROR_CODES, SidecarError, type AttemptFailureKind, type ErrorCode } from '../core/errors';
import { failedOnReusedConnection } from './connection-guard';
import { upstreamTlsFailureReason } from './tls-failure';
import { UnprocessedStreamError } from './http2-stream';

export type { AttemptFailureKind } from '../core/errors';

export interface AttemptFailure {
  readonly kind: AttemptFailureKind;
  readonly code: ErrorCode;
  readonly cause: unknown;
  /**
   * A reset of a connection that had carried an earlier response (kept alive and reused),
   * i.e. the stale keep-alive race. Only ever true for kind 'reset'.
   */
  readonly reusedConnection?: boolean;
  /**
   * The app did not process the request: an HTTP/2 stream above the last stream id of the
   * app's GOAWAY, or refused with REFUSED_STREAM (RFC 9113 §8.7). Only ever true for kind 'reset'.
   */
  readonly unprocessed?: boolean;
  /** What the client and the log are told instead of the code's default message (TLS failures name their reason). */
  readonly message?: string;
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

/** The code of each failure kind, read from the error catalogue (each kind is one code's). */
const CODE_OF_FAILURE = Object.fromEntries(
  ERROR_CODES.flatMap((code) => {
    const kind = ERRORS[code].failureKind;
    return kind === undefined ? [] : [[kind, code]];
  }),
) as Readonly<Record<AttemptFailureKind, ErrorCode>>;

function failure(kind: AttemptFailureKind, cause: unknown): AttemptFailure {
  return { kind, code: CODE_OF_FAILURE[kind], cause };
}

/** The one place where undici and socket errors become the sidecar's error codes. */
export function classifyUpstreamError(error: unknown): AttemptFailure {
  if (error instanceof SidecarError) {
    const own = ERRORS[error.code].failureKind;
    const kind: AttemptFailureKind =
      own === 'timeout' || own === 'connect-failure' || own === 'tls-failure' ? own
      // A 4xx of the sidecar's own catalogue raised while sending means the client's body failed.
      : error.status < 500 ? 'request-body'
      // Any other error the sidecar raised itself dropped the attempt's connection: a reset
      // (also for a response header it cannot relay, though its code is UPSTREAM_PROTOCOL_ERROR).
      : 'reset';
    return { kind, code: error.code, cause: error, ...(own === 'tls-failure' ? { message: error.message } : {}) };
  }
  if (error instanceof UnprocessedStreamError) return { kind: 'reset', code: CODE_OF_FAILURE.reset, cause: error, unprocessed: true };
  // undici leaves `code` unset on many parser errors (malformed status line, bad Content-Length).
  if (error instanceof errors.HTTPParserError) return failure('protocol-error', error);
  const code = errorCode(error);
  if (code !== undefined) {
    const tlsReason = upstreamTlsFailureReason(code, error);
    if (tlsReason !== undefined) return { kind: 'tls-failure', code: CODE_OF_FAILURE['tls-failure'], cause: error, message: tlsReason };
    if (CONNECT_ERRORS.has(code)) return failure('connect-failure', error);
    if (RESET_ERRORS.has(code)) return { kind: 'reset', code: CODE_OF_FAILURE.reset, cause: error, reusedConnection: failedOnReusedConnection(error) };
    if (TIMEOUT_ERRORS.has(code)) return failure('timeout', error);
    if (code.startsWith('HPE_') || code === 'UND_ERR_HEADERS_OVERFLOW' || code === 'UND_ERR_INFO') return failure('protocol-error', error);
    if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') return failure('request-body', error);
  }
  return failure('reset', error);
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // undici wraps some socket errors; the errno code is then on the cause.
  const cause = (error as { cause?: unknown }).cause;
  return cause === undefined || cause === error ? undefined : errorCode(cause);
}
