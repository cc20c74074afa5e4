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

export function yamlErrorToPending(doc: Document, e: YAMLError, text: string): PendingError {
  // BAD_INDENT also names an unclosed flow collection: only the mapping message is about a key.
  if (e.code === 'BAD_INDENT' && e.message.startsWith('All mapping items must start at the same column')) {
    const misplaced = misplacedKey(text, e.pos[0]);
    if (misplaced !== undefined) return { path: pathAtOffset(doc, misplaced.offset), offset: misplaced.offset, message: misplaced.message };
  }
  if (e.code === 'BLOCK_AS_IMPLICIT_KEY' || e.code === 'MULTILINE_IMPLICIT_KEY') {
    const deeper = keyIndentedUnderValue(text, e.pos[0]);
    // The path of the key above: the parser's tree holds the two lines as one key there.
    if (deeper !== undefined) return { path: pathAtOffset(doc, deeper.aboveOffset), offset: deeper.offset, message: deeper.message };
  }
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

/** A key's column and name on one line: `    key: ...` or `  - key: ...` (the key after the dash). */
const KEY_LINE = /^( *)(- +)?([^\s#:'"][^:#]*?|"[^"]*"|'[^']*'):(\s|$)/;

/**
 * The parser's "All mapping items must start at the same column" names the line; what a
 * person needs is the key that is misplaced and the columns where it would belong: the
 * columns of the keys still open above it (YAML nests by indentation alone), the nearest
 * one to its left and to its right.
 */
function misplacedKey(text: string, errorOffset: number): { offset: number; message: string } | undefined {
  const lineStart = text.lastIndexOf('\n', errorOffset - 1) + 1;
  const lineEnd = text.indexOf('\n', lineStart);
  const line = text.slice(lineStart, lineEnd < 0 ? undefined : lineEnd);
  const own = KEY_LINE.exec(line);
  if (own === null) return undefined;
  const column = own[1].length + (own[2]?.length ?? 0);
  // The keys open above the line: each earlier key line closes the deeper ones.
  const open: { column: number; key: string }[] = [];
  for (const above of text.slice(0, lineStart).split('\n')) {
    const m = KEY_LINE.exec(above);
    if (m === null) continue;
    const dash = m[2] === undefined ? undefined : m[1].length;
    const keyColumn = m[1].length + (m[2]?.length ?? 0);
    while (open.length > 0 && open[open.length - 1].column >= (dash ?? keyColumn)) open.pop();
    open.push({ column: keyColumn, key: m[3] });
  }
  if (open.some((k) => k.column === column)) return undefined;
  const left = [...open].reverse().find((k) => k.column < column);
  const right = open.find((k) => k.column > column);
  const at = (k: { column: number; key: string }) => `at column ${k.column + 1}, level with "${k.key}:"`;
  const places = [left, right].filter((k) => k !== undefined).map(at);
  if (places.length === 0) return undefined;
  return {
    offset: lineStart + column,
    message: `"${own[3]}" at column ${column + 1} is level with no key above it (YAML nests by indentation alone): write it ${places.join(', or ')}`,
  };
}

/**
 * `name: r` followed by a key indented deeper (`   match: ...`): YAML reads the two lines as
 * one multi-line key ("r match") and the parser says so. The person meant the deeper key as a
 * sibling of the key above (a value on its line cannot also hold a mapping).
 */
function keyIndentedUnderValue(text: string, errorOffset: number): { offset: number; aboveOffset: number; message: string } | undefined {
  const lineStart = text.lastIndexOf('\n', errorOffset - 1) + 1;
  const lines = text.slice(lineStart).split('\n');
  const above = KEY_LINE.exec(lines[0]);
  if (above === null || lines[0].slice(above[0].length).trim() === '') return undefined;
  const aboveColumn = above[1].length + (above[2]?.length ?? 0);
  let offset = lineStart + lines[0].length + 1;
  for (const line of lines.slice(1)) {
    const m = KEY_LINE.exec(line);
    if (line.trim() === '' || line.trim().startsWith('#')) {
      offset += line.length + 1;
      continue;
    }
    if (m === null || m[2] !== undefined) return undefined;
    const column = m[1].length;
    if (column <= aboveColumn) return undefined;
    return {
      offset: offset + column,
      aboveOffset: lineStart + aboveColumn,
      message: `"${m[3]}" at column ${column + 1} is deeper than "${above[3]}:" above it, whose value is on its line (YAML nests by indentation alone): write it at column ${aboveColumn + 1}, level with "${above[3]}:"`,
    };
  }
  return undefined;
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
