import { RE2JS, RE2JSSyntaxException, RE2Set } from 're2js';

/**
 * Route regexes run on every request against a path the client chooses, on the one event
 * loop. In V8's backtracking engine an ambiguous pattern (`^/(\w|\d)*$`, `^/(a+)+$`) takes
 * exponential time on a crafted path and stalls every request of the process; no syntactic
 * check refuses all such patterns without refusing ordinary ones. So route regexes use RE2
 * semantics (through re2js, a port in plain JavaScript, as Envoy uses RE2): matching is linear
 * in the length of the path whatever the pattern, and the syntax that needs backtracking
 * (backreferences, lookaround) is refused when the config loads.
 */
export class RouteRegex {
  /** re2js's compiled program: its engines take the anchoring as an argument. */
  private readonly program: ReturnType<RE2JS['re2']>;
  /**
   * Every match begins at the start of the path (the pattern starts with `^` on every branch,
   * as RE2 itself works out): searching anchored there gives the same answer as searching the
   * whole path, and stops at the first character that cannot continue a match. re2js's
   * unanchored search reads to the end of the path even then (150 µs on a 16 KiB path that a
   * `^/api` pattern rejects at its second character).
   */
  private readonly anchoredAtStart: boolean;

  constructor(
    readonly source: string,
    /** The listener's `pathMatching.caseInsensitive`: ASCII and Unicode case folded (RE2's `(?i)`). */
    readonly caseInsensitive = false,
  ) {
    this.program = RE2JS.compile(source, caseInsensitive ? RE2JS.CASE_INSENSITIVE : 0).re2();
    const startConditions = this.program.cond as number;
    this.anchoredAtStart = startConditions !== -1 && (startConditions & EMPTY_BEGIN_TEXT) !== 0;
  }

  /** Whether the regex matches anywhere in `path`, as RegExp#test does (no groups extracted, so the DFA runs when it can). */
  test(path: string): boolean {
    const anchor = this.anchoredAtStart ? RE2Set.ANCHOR_START : RE2Set.UNANCHORED;
    return (this.program.matchWithGroup(path, 0, path.length, anchor, 0) as [boolean, unknown])[0];
  }
}

/** RE2's start condition "beginning of text" (`^` without the m flag, `\A`); re2js does not export it. */
const EMPTY_BEGIN_TEXT = 4;

/** Where the syntax is documented, for error messages. */
const RE2_SYNTAX_URL = 'https://github.com/google/re2/wiki/Syntax';

/**
 * Compiles a route regex with RE2's default flags (case-sensitive unless `caseInsensitive`, `.` not matching `\n`,
 * `^`/`$` at the ends of the path only), the defaults of a JavaScript RegExp without flags.
 * Throws RE2JSSyntaxException (routeRegexError describes it) when RE2 refuses the pattern.
 */
export function compileRouteRegex(source: string, caseInsensitive = false): RouteRegex {
  return new RouteRegex(source, caseInsensitive);
}

/**
 * True for a compiled route regex. Its program keeps a cache of DFA states and a pool of
 * machines that it writes while matching, so it must never be frozen.
 */
export function isRouteRegex(value: unknown): value is RouteRegex {
  return value instanceof RouteRegex;
}

/** Why `source` cannot be a route regex, or undefined when it compiles. */
export function routeRegexError(source: string): string | undefined {
  try {
    compileRouteRegex(source);
    return undefined;
  } catch (err) {
    const reason = err instanceof RE2JSSyntaxException ? unsupported(err) ?? `${err.error}: \`${err.input ?? ''}\`` : String(err);
    return `${reason} (route regexes use RE2 syntax, matched in linear time: ${RE2_SYNTAX_URL})`;
  }
}

/** The common JavaScript constructs RE2 leaves out on purpose, named, so the fix is obvious. */
function unsupported(err: RE2JSSyntaxException): string | undefined {
  const input = err.input ?? '';
  if (/^\\[1-9]/.test(input) || input.startsWith('\\k')) return `backreferences (\`${input}\`) are not supported by RE2`;
  if (input.startsWith('(?=') || input.startsWith('(?!')) return `lookahead (\`${input}\`) is not supported by RE2`;
  if (input.startsWith('(?<=') || input.startsWith('(?<!')) return `lookbehind (\`${input.slice(0, 4)}\`) is not supported by RE2`;
  if (input.startsWith('\\u')) return 'the `\\uXXXX` escape is written `\\x{XXXX}` in RE2';
  return undefined;
}
