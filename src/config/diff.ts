/**
 * The structural difference of two configuration documents (as written, validated): which
 * listeners, routes and clusters are added, removed or changed, field by field, and which
 * other settings changed. Routes are named within their listener (`listener/route`). Pure.
 */

export interface FieldChange {
  /** Dotted path inside the item, e.g. `match.prefix` (`[2]` for array items). */
  readonly field: string;
  readonly before: unknown;
  readonly after: unknown;
}

export interface ItemChanges {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly changed: ReadonlyArray<{ readonly name: string; readonly fields: readonly FieldChange[] }>;
}

export interface ConfigDiff {
  readonly listeners: ItemChanges;
  readonly routes: ItemChanges;
  readonly clusters: ItemChanges;
  /** Changes outside listeners and clusters (admin, tracing, accessLog, drain, workers...). */
  readonly settings: readonly FieldChange[];
  readonly unchanged: boolean;
}

type Doc = Record<string, unknown>;

function asRecord(value: unknown): Doc {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Doc) : {};
}

function named(list: unknown): Map<string, Doc> {
  const map = new Map<string, Doc>();
  if (!Array.isArray(list)) return map;
  for (const item of list) {
    const record = asRecord(item);
    if (typeof record.name === 'string') map.set(record.name, record);
  }
  return map;
}

/** Every leaf that differs between `before` and `after`, with its path. */
export function fieldChanges(before: unknown, after: unknown, path = ''): FieldChange[] {
  if (Object.is(before, after)) return [];
  const bothArrays = Array.isArray(before) && Array.isArray(after);
  const bothObjects = !bothArrays && isPlainObject(before) && isPlainObject(after);
  if (bothArrays) {
    const a = before as unknown[];
    const b = after as unknown[];
    // A list of scalars (methods, on, propagators) reads best as one value.
    if (a.every(isScalar) && b.every(isScalar)) return JSON.stringify(a) === JSON.stringify(b) ? [] : [{ field: path, before, after }];
    const out: FieldChange[] = [];
    for (let i = 0; i < Math.max(a.length, b.length); i++) out.push(...fieldChanges(a[i], b[i], `${path}[${i}]`));
    return out;
  }
  if (bothObjects) {
    const a = before as Doc;
    const b = after as Doc;
    const out: FieldChange[] = [];
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) out.push(...fieldChanges(a[key], b[key], path === '' ? key : `${path}.${key}`));
    return out;
  }
  return [{ field: path, before: before ?? null, after: after ?? null }];
}

function isScalar(value: unknown): boolean {
  return value === null || ['string', 'number', 'boolean'].includes(typeof value);
}

function isPlainObject(value: unknown): value is Doc {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function compareItems(before: Map<string, Doc>, after: Map<string, Doc>, omit: readonly string[] = []): ItemChanges {
  const strip = (doc: Doc): Doc => Object.fromEntries(Object.entries(doc).filter(([key]) => !omit.includes(key)));
  const changed: Array<{ name: string; fields: FieldChange[] }> = [];
  for (const [name, doc] of after) {
    const old = before.get(name);
    if (old === undefined) continue;
    const fields = fieldChanges(strip(old), strip(doc));
    if (fields.length > 0) changed.push({ name, fields });
  }
  return {
    added: [...after.keys()].filter((name) => !before.has(name)),
    removed: [...before.keys()].filter((name) => !after.has(name)),
    changed,
  };
}

function routesOf(listeners: Map<string, Doc>): Map<string, Doc> {
  const routes = new Map<string, Doc>();
  for (const [listener, doc] of listeners) {
    const list = Array.isArray(doc.routes) ? doc.routes : [];
    list.forEach((route, index) => {
      const record = asRecord(route);
      // The position matters (first match wins): it is compared as a field.
      routes.set(`${listener}/${String(record.name)}`, { ...record, position: index });
    });
  }
  return routes;
}

export function diffConfigs(beforeDocument: unknown, afterDocument: unknown): ConfigDiff {
  const before = asRecord(beforeDocument);
  const after = asRecord(afterDocument);
  const listenersBefore = named(before.listeners);
  const listenersAfter = named(after.listeners);
  const listeners = compareItems(listenersBefore, listenersAfter, ['routes']);
  const routes = compareItems(routesOf(listenersBefore), routesOf(listenersAfter));
  const clusters = compareItems(named(before.clusters), named(after.clusters));
  const rest = (doc: Doc): Doc => Object.fromEntries(Object.entries(doc).filter(([key]) => key !== 'listeners' && key !== 'clusters'));
  const settings = fieldChanges(rest(before), rest(after));
  const unchanged = [listeners, routes, clusters].every((c) => c.added.length + c.removed.length + c.changed.length === 0) && settings.length === 0;
  return { listeners, routes, clusters, settings, unchanged };
}
