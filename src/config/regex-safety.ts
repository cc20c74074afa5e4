/**
 * Route regexes run on every request against a path the client chooses, in V8's
 * backtracking engine, on the one event loop. A regex with a repeated group that itself
 * repeats (`(a+)+`, `(\w*)*`, `(x+y?)+`) can take exponential time on a crafted path and
 * stop the whole process (Envoy avoids this class with RE2; Node has no linear-time engine
 * by default). Such shapes ("star height" above one) are refused when the config loads.
 *
 * The check is syntactic and conservative: it may refuse a nested repetition that is in fact
 * unambiguous (`(/[a-z]+)+`), which can always be written without nesting (`(/[a-z]+)*` is
 * also nested; `[/a-z]+` is not).
 */

interface Frame {
  /** The group (or the whole pattern) repeats something unboundedly inside it. */
  repeatsInside: boolean;
}

/** The first nested repetition in `source`, as a short excerpt, or undefined when there is none. */
export function nestedRepetition(source: string): string | undefined {
  const frames: Frame[] = [{ repeatsInside: false }];
  const groupStarts: number[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    if (c === '\\') {
      i += 2;
      i = afterQuantifier(source, i, frames[frames.length - 1]);
      continue;
    }
    if (c === '[') {
      i = classEnd(source, i);
      i = afterQuantifier(source, i, frames[frames.length - 1]);
      continue;
    }
    if (c === '(') {
      frames.push({ repeatsInside: false });
      groupStarts.push(i);
      i++;
      continue;
    }
    if (c === ')' && frames.length > 1) {
      const group = frames.pop() as Frame;
      const start = groupStarts.pop() as number;
      const parent = frames[frames.length - 1];
      const quantifier = quantifierAt(source, i + 1);
      if (quantifier !== undefined && quantifier.unbounded && group.repeatsInside) {
        return source.slice(start, i + 1 + quantifier.length);
      }
      parent.repeatsInside ||= group.repeatsInside || (quantifier?.unbounded ?? false);
      i += 1 + (quantifier?.length ?? 0);
      continue;
    }
    i = afterQuantifier(source, i + 1, frames[frames.length - 1]);
  }
  return undefined;
}

/** Skips a quantifier at `at` (if any) and records an unbounded one in `frame`. */
function afterQuantifier(source: string, at: number, frame: Frame): number {
  const quantifier = quantifierAt(source, at);
  if (quantifier === undefined) return at;
  if (quantifier.unbounded) frame.repeatsInside = true;
  return at + quantifier.length;
}

/** `*`, `+`, `{n,}` and `{n,m}` with m > 1 repeat; `?` and `{0,1}` do not. A trailing lazy `?` is included. */
function quantifierAt(source: string, at: number): { readonly length: number; readonly unbounded: boolean } | undefined {
  const c = source[at];
  let length: number;
  let unbounded: boolean;
  if (c === '*' || c === '+') {
    length = 1;
    unbounded = true;
  } else if (c === '?') {
    length = 1;
    unbounded = false;
  } else if (c === '{') {
    const braces = /^\{(\d+)(,(\d*))?\}/.exec(source.slice(at));
    if (braces === null) return undefined;
    length = braces[0].length;
    const max = braces[2] === undefined ? Number(braces[1]) : braces[3] === '' ? Infinity : Number(braces[3]);
    unbounded = max > 1;
  } else {
    return undefined;
  }
  if (source[at + length] === '?') length++;
  return { length, unbounded };
}

/** Index just past the character class starting at `at`. */
function classEnd(source: string, at: number): number {
  // In JavaScript `]` always closes a class, even first (`[]` matches nothing).
  let i = at + 1;
  while (i < source.length && source[i] !== ']') i += source[i] === '\\' ? 2 : 1;
  return i + 1;
}
