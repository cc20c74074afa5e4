import type { IncomingMessage } from 'node:http';

/**
 * What the proxy reads and writes differently for a gRPC request (content-type
 * `application/grpc`, `application/grpc+proto`, ...): the status travels in `grpc-status`
 * (in the trailers, or in the headers of a trailers-only response), the client's deadline in
 * `grpc-timeout`, and errors are HTTP 200 with a status code rather than an HTTP status
 * (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md).
 */

/** The gRPC status codes the sidecar answers with or retries on. */
export const GRPC_STATUS = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

export type GrpcStatusCode = (typeof GRPC_STATUS)[keyof typeof GRPC_STATUS];

/** `retry.on` names of gRPC statuses (Envoy's), with the code each stands for. */
export const GRPC_RETRY_ON = {
  cancelled: GRPC_STATUS.CANCELLED,
  'deadline-exceeded': GRPC_STATUS.DEADLINE_EXCEEDED,
  internal: GRPC_STATUS.INTERNAL,
  'resource-exhausted': GRPC_STATUS.RESOURCE_EXHAUSTED,
  unavailable: GRPC_STATUS.UNAVAILABLE,
} as const;

export type GrpcRetryOn = keyof typeof GRPC_RETRY_ON;

export const GRPC_RETRY_ON_NAMES = Object.keys(GRPC_RETRY_ON) as readonly GrpcRetryOn[];

const GRPC_RETRY_ON_BY_CODE: ReadonlyMap<number, GrpcRetryOn> = new Map(GRPC_RETRY_ON_NAMES.map((name) => [GRPC_RETRY_ON[name], name]));

/** The `retry.on` name of a gRPC status, when it has one. */
export function grpcRetryOnName(code: number): GrpcRetryOn | undefined {
  return GRPC_RETRY_ON_BY_CODE.get(code);
}

/** Whether the request is a gRPC call (any `application/grpc` content type, gRPC-Web's included). */
export function isGrpcRequest(req: Pick<IncomingMessage, 'headers'>): boolean {
  const type = req.headers['content-type'];
  return typeof type === 'string' && type.length >= 16 && type.slice(0, 16).toLowerCase() === 'application/grpc';
}

/** Milliseconds per `grpc-timeout` unit (Hours, Minutes, Seconds, milliseconds, micro-, nanoseconds). */
const TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };

/** `TimeoutValue TimeoutUnit`: at most 8 digits, then one unit letter. */
const GRPC_TIMEOUT = /^(\d{1,8})([HMSmun])$/;

/** A client's `grpc-timeout` in ms; undefined when absent or malformed (a malformed one is ignored, as grpc-go does). */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  const match = GRPC_TIMEOUT.exec(value);
  if (match === null) return undefined;
  return Number(match[1]) * TIMEOUT_UNIT_MS[match[2]];
}

/** The time left, as the app receives it: whole milliseconds, at least 1 (0 would mean "already expired" to some servers). */
export function formatGrpcTimeout(ms: number): string {
  return `${Math.min(99_999_999, Math.max(1, Math.ceil(ms)))}m`;
}

/** `grpc-status` among undici's raw response headers (a trailers-only response carries it there); undefined if absent. */
export function grpcStatusInRawHeaders(rawHeaders: readonly Buffer[]): number | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (name.length === 11 && name.toString('latin1').toLowerCase() === 'grpc-status') return parseGrpcStatus(rawHeaders[i + 1].toString('latin1'));
  }
  return undefined;
}

/** A `grpc-status` value; undefined when it is not a decimal status code. */
export function parseGrpcStatus(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || !/^\d{1,2}$/.test(text.trim())) return undefined;
  return Number(text.trim());
}

/**
 * `grpc-message` is percent-encoded UTF-8: every byte outside printable ASCII, and `%`
 * itself, as %XX (so a message can never carry CR/LF into a header).
 */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The gRPC status for an HTTP status the sidecar answers with, where the catalogue names
 * none: gRPC's own mapping of HTTP statuses (PROTOCOL-HTTP2.md, "HTTP to gRPC Status Code
 * Mapping"), which clients apply to non-gRPC answers anyway.
 */
export function grpcStatusForHttpStatus(status: number): GrpcStatusCode {
  switch (status) {
    case 400:
      return GRPC_STATUS.INTERNAL;
    case 401:
      return GRPC_STATUS.UNAUTHENTICATED;
    case 403:
      return GRPC_STATUS.PERMISSION_DENIED;
    case 404:
      return GRPC_STATUS.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC_STATUS.UNAVAILABLE;
    default:
      return GRPC_STATUS.UNKNOWN;
  }
}

/** The call's `package.Service/Method`, from its request path `/package.Service/Method`. */
export function grpcMethodOf(url: string | undefined): string {
  if (url === undefined) return '';
  const query = url.indexOf('?');
  const path = query < 0 ? url : url.slice(0, query);
  return path.startsWith('/') ? path.slice(1) : path;
}

/** The fields that carry a call's status; in a trailers-only answer they are in the headers. */
const STATUS_FIELDS: ReadonlySet<string> = new Set(['grpc-status', 'grpc-message', 'grpc-status-details-bin']);

/**
 * Takes the status fields out of a flat `[name, value, ...]` header list, for them to be sent
 * as trailers instead: a trailers-only answer is one HEADERS frame that ends the stream, which
 * a compatibility response cannot send, and gRPC clients read a status in the trailers after
 * plain headers the same way. Undefined (and `headers` unchanged) when there are none.
 */
export function takeGrpcStatusFields(headers: string[]): Record<string, string> | undefined {
  let taken: Record<string, string> | undefined;
  let kept = 0;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i].toLowerCase();
    if (STATUS_FIELDS.has(name)) {
      (taken ??= {})[name] = headers[i + 1];
      continue;
    }
    headers[kept++] = headers[i];
    headers[kept++] = headers[i + 1];
  }
  headers.length = kept;
  return taken;
}
