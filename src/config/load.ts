/**
 * Loading a configuration file: read → parse YAML → validate → cross-check → compile → freeze.
 *
 * Contract:
 * - Nothing here throws for bad input. Any text gives either a snapshot or a list of
 *   errors; an unexpected exception becomes an "internal error" entry instead of escaping
 *   (so a reload can never crash the process, and a fuzzer can tell the two apart).
 * - Every error is reported at once, each with its path (`listeners[0].routes[1].timeout`)
 *   and the 1-based line of the YAML node it is about: syntax errors, schema errors and
 *   cross-field errors alike.
 * - The snapshot is deep-frozen and has every default applied (see defaults.ts).
 *
 * This file is the pipeline; each step lives in its own file: yaml-positions.ts (path ↔
 * line/column), messages.ts (error text, "did you mean", the summary), cross-check.ts
 * (cross-field rules), compile.ts (document → frozen runtime snapshot).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as nodePath from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { EMBEDDED_SOURCE, compile, deepFreeze } from './compile';
import { crossCheck } from './cross-check';
import { readRouteFiles } from './route-files';
import { type ConfigError, type PendingError, describeReadError, errorText, genericMessage, zodIssuesToPending } from './messages';
import { configSchema } from './schema';
import type { SidecarConfig } from './types';
import { findNonScalarKeys, locateError, yamlErrorToPending } from './yaml-positions';

// The loader's public surface, wherever each part lives.
export { EMBEDDED_SOURCE, freezeSnapshot, stableStringify } from './compile';
export { type ConfigError, formatConfigErrors, formatPath, summarizeConfig } from './messages';

export type LoadResult =
  | { readonly ok: true; readonly config: SidecarConfig }
  | { readonly ok: false; readonly errors: readonly ConfigError[] };

/** Aliases allowed when expanding the document: a few are handy, thousands are a "billion laughs". */
const MAX_ALIAS_COUNT = 100;

// ---------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------

/** Reads and compiles a configuration file. Never rejects. */
export async function loadConfigFile(file: string): Promise<LoadResult> {
  let absolute = String(file);
  try {
    absolute = nodePath.resolve(absolute);
    const bytes = await readFile(absolute);
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      return failure([{ path: '', line: undefined, message: `config file ${absolute} is not valid UTF-8 text` }]);
    }
    return compileText(text, absolute, sha256(bytes));
  } catch (err) {
    return failure([{ path: '', line: undefined, message: describeReadError(absolute, err) }]);
  }
}

/**
 * Compiles configuration text. `sourcePath` names the file the text came from (relative
 * paths inside resolve against its folder), or EMBEDDED_SOURCE.
 */
export function parseConfigText(text: string, sourcePath: string): LoadResult {
  try {
    if (typeof text !== 'string') {
      return failure([{ path: '', line: undefined, message: 'the configuration must be text' }]);
    }
    const source = sourcePath === EMBEDDED_SOURCE ? EMBEDDED_SOURCE : nodePath.resolve(String(sourcePath));
    return compileText(text, source, sha256(Buffer.from(text, 'utf8')));
  } catch (err) {
    return internalError(err);
  }
}

// ---------------------------------------------------------------------------------------
// Pipeline
// ---------------------------------------------------------------------------------------

function compileText(text: string, source: string, hash: string): LoadResult {
  try {
    const lineCounter = new LineCounter();
    const doc = parseDocument(text, {
      lineCounter,
      prettyErrors: false,
      uniqueKeys: true,
      merge: true,
      // Not 'silent': that also drops the "multiple documents" error. Warnings are collected, never printed.
      logLevel: 'error',
    });
    const locate = (e: PendingError): ConfigError => locateError(doc, lineCounter, e);

    // Syntax errors make the rest of the tree unreliable: report them alone. Duplicate keys
    // leave a well-formed tree (the last value wins), so validation goes on after them.
    const yamlErrors = [...doc.errors, ...doc.warnings];
    // One mistake can raise two parser errors that read the same once explained.
    const pending: PendingError[] = yamlErrors
      .map((e) => yamlErrorToPending(doc, e, text))
      .filter((p, i, all) => all.findIndex((q) => q.offset === p.offset && q.message === p.message) === i);
    if (yamlErrors.some((e) => e.code !== 'DUPLICATE_KEY')) return failure(pending.map(locate));

    const complexKeys = findNonScalarKeys(doc);
    if (complexKeys.length > 0) return failure([...pending, ...complexKeys].map(locate));

    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      const message =
        err instanceof ReferenceError
          ? `too many alias expansions (more than ${MAX_ALIAS_COUNT}); write the values out`
          : `cannot read the YAML document: ${errorText(err)}`;
      return failure([...pending, { path: [], message }].map(locate));
    }
    if (value === null || value === undefined) {
      return failure([{ path: '', line: 1, column: 1, message: 'the file is empty: a configuration needs at least `listeners`' }]);
    }

    const parsed = configSchema.safeParse(value, { error: genericMessage });
    if (!parsed.success) pending.push(...zodIssuesToPending(parsed.error.issues));
    pending.push(...crossCheck(value, (path) => locate({ path, message: '' }).line));

    if (pending.length > 0 || !parsed.success) return failure(pending.map(locate));
    const routeFiles = readRouteFiles(parsed.data, source === EMBEDDED_SOURCE ? process.cwd() : nodePath.dirname(source));
    if (routeFiles.errors.length > 0) return failure(routeFiles.errors.map(locate));
    return { ok: true, config: deepFreeze(compile(parsed.data, source, hash, routeFiles.files)) };
  } catch (err) {
    return internalError(err);
  }
}

function failure(errors: ConfigError[]): LoadResult {
  const seen = new Set<string>();
  const unique = errors.filter((e) => {
    const key = `${e.line}\u0000${e.path}\u0000${e.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  unique.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.column ?? 0) - (b.column ?? 0));
  return { ok: false, errors: unique };
}

function internalError(err: unknown): LoadResult {
  if (err instanceof RangeError && /call stack/i.test(err.message)) {
    return failure([{ path: '', line: undefined, message: 'the document is nested too deeply' }]);
  }
  return failure([{ path: '', line: undefined, message: `internal error while loading the configuration: ${errorText(err)}` }]);
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
