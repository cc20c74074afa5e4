import type { ConfigError } from '../config/load';
import type { SidecarConfig } from '../config/types';
import type { RecordFilter } from '../telemetry/flight-recorder';

/**
 * Messages between the primary and its workers over the node:cluster IPC channel. The
 * channel uses the `advanced` serialization (the structured clone algorithm), so a compiled
 * SidecarConfig (Maps, Sets, RegExps, Dates) crosses as it is: the primary validates and
 * compiles a file once, and every worker runs exactly what it validated.
 */

/** The environment variable that tells a worker its slot number (1..workers), stable across restarts. */
export const WORKER_ID_ENV = 'SIDECAR_WORKER_ID';

/** What the primary can ask a worker for; each has a matching `answer`. */
export type WorkerQuery = 'metrics' | 'stats' | 'clusters' | 'config';

export type PrimaryMessage =
  /** The first message a worker gets: the config to start with. */
  | { readonly kind: 'start'; readonly config: SidecarConfig }
  /** A validated config to apply (Sidecar#applyConfig); answered with an ApplyAnswer. */
  | { readonly kind: 'apply'; readonly id: number; readonly config: SidecarConfig }
  | { readonly kind: 'query'; readonly id: number; readonly query: WorkerQuery }
  /** GET /requests: the worker's recorded requests (a RequestsPage), most recent first. */
  | { readonly kind: 'requests'; readonly id: number; readonly filter: RecordFilter }
  /** GET /requests/{id}: the worker's record of that request (a RequestRecord), or null. */
  | { readonly kind: 'request'; readonly id: number; readonly requestId: string }
  /** Stop accepting and finish the requests in flight within `timeoutMs`, then exit 0. */
  | { readonly kind: 'drain'; readonly timeoutMs: number };

export interface BoundListener {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

export type ApplyAnswer =
  | { readonly ok: true; readonly sha256: string; readonly changes: readonly string[]; readonly listeners: readonly BoundListener[] }
  | { readonly ok: false; readonly error: string; readonly errors: readonly ConfigError[] };

export type WorkerMessage =
  /** The worker listens for messages now: the primary answers with `start`. */
  | { readonly kind: 'hello' }
  | { readonly kind: 'ready'; readonly sha256: string; readonly listeners: readonly BoundListener[] }
  | { readonly kind: 'start-failed'; readonly error: string }
  | { readonly kind: 'answer'; readonly id: number; readonly value: unknown }
  | { readonly kind: 'answer-error'; readonly id: number; readonly error: string }
  | { readonly kind: 'drained'; readonly cutConnections: number; readonly durationMs: number };

const PRIMARY_KINDS = new Set(['start', 'apply', 'query', 'requests', 'request', 'drain']);
const WORKER_KINDS = new Set(['hello', 'ready', 'start-failed', 'answer', 'answer-error', 'drained']);

/** Other modules may use the same channel (prom-client's cluster support does): only ours are read. */
export function isPrimaryMessage(message: unknown): message is PrimaryMessage {
  return typeof message === 'object' && message !== null && PRIMARY_KINDS.has((message as { kind?: unknown }).kind as string);
}

export function isWorkerMessage(message: unknown): message is WorkerMessage {
  return typeof message === 'object' && message !== null && WORKER_KINDS.has((message as { kind?: unknown }).kind as string);
}
