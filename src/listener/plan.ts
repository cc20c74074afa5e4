import { stableStringify } from '../config/load';
import type { ListenerConfig } from '../config/types';

/**
 * Settings a bound listener can take without a new socket: routes, the trusted peers and the
 * request policies (underscored headers, path matching) are read per request from the state /
 * the request handler, and Node reads the timeouts and the
 * connection limit from the server object on every use. Anything else (today maxHeaderBytes
 * and tls; tomorrow whatever field is added) is fixed when the server is created, so by
 * default a new field is treated as needing a new socket — the safe side.
 */
export const LISTENER_FIELDS_APPLIED_IN_PLACE: ReadonlySet<string> = new Set([
  'name',
  'routes',
  'trustedProxies',
  'headersTimeoutMs',
  'requestTimeoutMs',
  'keepAliveTimeoutMs',
  'maxConnections',
  'maxConnectionsPerPeer',
  'headersWithUnderscores',
  'pathMatching',
  // Read per CONNECT from the current state (listener/connect-handler.ts).
  'forwardProxy',
  'escapedSlashes',
]);

export interface KeptListener {
  readonly before: ListenerConfig;
  readonly after: ListenerConfig;
  /** Fields that differ (all in LISTENER_FIELDS_APPLIED_IN_PLACE); empty when only routes may differ. */
  readonly changed: readonly string[];
}

export interface MovedListener {
  readonly before: ListenerConfig;
  readonly after: ListenerConfig;
}

/**
 * How to get from the running listeners to the new ones without refusing a connection that
 * either config would accept: bind `add` and `move[].after` first, then swap the state, then
 * drain `remove` and `move[].before`. `refused` non-empty means the reload must not be applied.
 */
export interface ListenerPlan {
  readonly keep: readonly KeptListener[];
  readonly add: readonly ListenerConfig[];
  readonly move: readonly MovedListener[];
  readonly remove: readonly ListenerConfig[];
  readonly refused: readonly ListenerRefusal[];
}

/** Why the listener named `listener` (in the new config) keeps the whole reload from being applied. */
export interface ListenerRefusal {
  readonly listener: string;
  readonly message: string;
}

export function listenerAddress(config: Pick<ListenerConfig, 'host' | 'port'>): string {
  return config.host.includes(':') ? `[${config.host}]:${config.port}` : `${config.host}:${config.port}`;
}

/**
 * Plans a reload's listener changes. A listener is the same one when its name matches, or
 * (renamed) when an unmatched new listener has the address of an unmatched running one.
 * Port 0 means "any free port": it never collides, and a kept port-0 listener keeps the
 * port it was given.
 */
export function planListeners(running: readonly ListenerConfig[], next: readonly ListenerConfig[]): ListenerPlan {
  const keep: KeptListener[] = [];
  const add: ListenerConfig[] = [];
  const move: MovedListener[] = [];
  const refused: ListenerRefusal[] = [];
  const unmatched = new Map(running.map((l) => [l.name, l]));

  const byName = next.filter((after) => unmatched.has(after.name));
  const unnamed = next.filter((after) => !unmatched.has(after.name));
  for (const after of byName) {
    const before = unmatched.get(after.name) as ListenerConfig;
    unmatched.delete(after.name);
    if (listenerAddress(before) !== listenerAddress(after)) move.push({ before, after });
    else keepOrRefuse(before, after);
  }
  for (const after of unnamed) {
    const renamed = after.port === 0 ? undefined : [...unmatched.values()].find((b) => listenerAddress(b) === listenerAddress(after));
    if (renamed === undefined) {
      add.push(after);
      continue;
    }
    unmatched.delete(renamed.name);
    keepOrRefuse(renamed, after);
  }
  const remove = [...unmatched.values()];

  // A new socket is bound while the old ones still hold their addresses (that is what keeps
  // the handover lossless), so a new address must not be one a running listener holds.
  for (const after of [...add, ...move.map((m) => m.after)]) {
    if (after.port === 0) continue;
    const holder = running.find((b) => b.port !== 0 && listenerAddress(b) === listenerAddress(after));
    if (holder !== undefined) {
      refused.push({
        listener: after.name,
        message:
          `listener ${after.name} wants ${listenerAddress(after)}, which listener ${holder.name} holds until this reload completes; ` +
          'free the address in one reload and take it in the next',
      });
    }
  }
  return { keep, add, move, remove, refused };

  function keepOrRefuse(before: ListenerConfig, after: ListenerConfig): void {
    const changed = changedFields(before, after);
    const fixed = changed.filter((field) => !LISTENER_FIELDS_APPLIED_IN_PLACE.has(field));
    if (fixed.length === 0) {
      keep.push({ before, after, changed });
      return;
    }
    refused.push({
      listener: after.name,
      message:
        `listener ${after.name}: ${fixed.join(', ')} cannot change while it stays bound at ${listenerAddress(after)} ` +
        '(the socket would have to close, refusing connections meanwhile); restart the sidecar, ' +
        'or move the listener to a new address in the same reload',
    });
  }
}

/** Top-level fields whose values differ, routes compared by reference only (they are replaced wholesale by the state). */
function changedFields(before: ListenerConfig, after: ListenerConfig): string[] {
  const fields = new Set([...Object.keys(before), ...Object.keys(after)]);
  const changed: string[] = [];
  for (const field of fields) {
    const a = (before as unknown as Record<string, unknown>)[field];
    const b = (after as unknown as Record<string, unknown>)[field];
    if (field === 'routes') continue;
    if (stableStringify(a) !== stableStringify(b)) changed.push(field);
  }
  return changed;
}
