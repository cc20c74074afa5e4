/**
 * YAML positions: from a path in the document (`listeners[0].routes[1].timeout`) to the line
 * and column of the node it names, and back from a parser error's offset to a path.
 */
import {
  type Document,
  type LineCounter,
  type Node as YamlNode,
  type YAMLError,
  isAlias,
  isCollection,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  visit,
} from 'yaml';
import { type ConfigError, type PathSegments, type PendingError, type Segment, formatPath } from './messages';
import { show } from './schema';

export function yamlErrorToPending(doc: Document, e: YAMLError): PendingError {
  const offset = e.pos[0];
  const path = pathAtOffset(doc, offset);
  if (e.code === 'DUPLICATE_KEY') {
    const key = path.length > 0 ? String(path[path.length - 1]) : '';
    return { path, offset, message: `duplicate key ${show(key)}: each key may appear once in a mapping` };
  }
  if (e.code === 'MULTIPLE_DOCS') {
    return { path: [], offset, message: 'the file holds more than one YAML document (---); a configuration is one document' };
  }
  const firstLine = e.message.split('\n')[0];
  return { path, offset, message: `YAML: ${firstLine}` };
}

/** Keys like `? [a, b]` have no place in this format and cannot become object keys faithfully. */
export function findNonScalarKeys(doc: Document): PendingError[] {
  const found: PendingError[] = [];
  visit(doc, {
    Pair(_key, pair) {
      if (pair.key !== null && !isScalar(pair.key) && isNode(pair.key) && pair.key.range) {
        const offset = pair.key.range[0];
        found.push({ path: pathAtOffset(doc, offset), offset, message: 'keys must be plain strings, not lists or mappings' });
      }
    },
  });
  return found;
}

function nodeStart(node: unknown): number | undefined {
  return isNode(node) && node.range ? node.range[0] : undefined;
}

/** Finds the pair whose scalar key equals `segment` in a mapping. */
function findPair(map: YamlNode, segment: Segment) {
  if (!isMap(map)) return undefined;
  return map.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
}

/**
 * The offset an error about `path` should point at: the deepest node of the path that
 * exists. Collections and missing values point at their key (the `retry:` line, not the
 * first line inside it); scalars at the value itself.
 */
function offsetOfPath(doc: Document, path: PathSegments, atKey: boolean): number | undefined {
  let node: unknown = doc.contents;
  let offset = nodeStart(node);
  for (let i = 0; i < path.length; i++) {
    if (isAlias(node)) node = node.resolve(doc);
    const segment = path[i];
    if (isMap(node)) {
      const pair = findPair(node, segment);
      if (!pair) break;
      const keyOffset = nodeStart(pair.key);
      const value = pair.value;
      const last = i === path.length - 1;
      if (last && atKey) return keyOffset ?? offset;
      if (value === null || !isNode(value) || isCollection(value) || isAlias(value) || (isScalar(value) && value.value === null)) {
        offset = keyOffset ?? offset;
      } else {
        offset = nodeStart(value) ?? keyOffset ?? offset;
      }
      node = value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment];
      if (item === undefined || item === null) break;
      offset = nodeStart(item) ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

/** The path of the innermost key or item whose range holds `offset` (for parser errors). */
function pathAtOffset(doc: Document, offset: number): Segment[] {
  const path: Segment[] = [];
  let node: unknown = doc.contents;
  const holds = (n: unknown): boolean => isNode(n) && !!n.range && n.range[0] <= offset && offset <= n.range[2];
  // Deep enough for any real file; keeps paths of pathological nesting short.
  for (let depth = 0; depth < 32; depth++) {
    if (isMap(node)) {
      const pair = node.items.find((p) => holds(p.key) || holds(p.value));
      if (!pair || !isScalar(pair.key)) break;
      path.push(String(pair.key.value));
      if (holds(pair.key)) break;
      node = pair.value;
    } else if (isSeq(node)) {
      const index = node.items.findIndex((item) => holds(item) || (isPair(item) && (holds(item.key) || holds(item.value))));
      if (index < 0) break;
      path.push(index);
      node = node.items[index];
    } else {
      break;
    }
  }
  return path;
}

export function locateError(doc: Document, lineCounter: LineCounter, e: PendingError): ConfigError {
  const offset = e.offset ?? offsetOfPath(doc, e.path, e.atKey === true);
  const path = formatPath(e.path);
  if (offset === undefined) return { path, line: 1, column: 1, message: e.message };
  const pos = lineCounter.linePos(offset);
  return { path, line: pos.line, column: pos.col, message: e.message };
}
