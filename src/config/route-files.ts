/**
 * Files a route's auth section names (a JWKS file, an htpasswd file), read and checked when
 * the config loads, so that a bad file is a config error with its field's line and the last
 * good config stays. The runtime re-reads them when they change (auth/file-source.ts) with
 * the same parsers.
 */
import { readFileSync } from 'node:fs';
import * as nodePath from 'node:path';
import type { PendingError } from './messages';
import type { ConfigDocument } from './schema';
import type { JsonWebKey } from './types';

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly message: string };

/** Contents of the route files of one document, by absolute path. */
export type RouteFiles = ReadonlyMap<string, unknown>;

/** The public key members each key type needs (RFC 7518 §6). */
const PUBLIC_MEMBERS: Readonly<Record<string, readonly string[]>> = { RSA: ['n', 'e'], EC: ['crv', 'x', 'y'], OKP: ['crv', 'x'] };
/** Members only a private (or secret) key has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'];

/** A JSON Web Key Set of public keys. */
export function parseJwks(text: string): Parsed<JsonWebKey[]> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    return { ok: false, message: `not JSON: ${(error as Error).message}` };
  }
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { keys?: unknown }).keys)) {
    return { ok: false, message: 'not a JSON Web Key Set: expected an object with a "keys" array' };
  }
  const keys = (doc as { keys: unknown[] }).keys;
  const out: JsonWebKey[] = [];
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    if (typeof key !== 'object' || key === null || Array.isArray(key)) return { ok: false, message: `keys[${i}] is not an object` };
    const record = key as Record<string, unknown>;
    const members = typeof record.kty === 'string' ? PUBLIC_MEMBERS[record.kty] : undefined;
    if (members === undefined) return { ok: false, message: `keys[${i}]: kty must be RSA, EC or OKP (symmetric keys are never accepted)` };
    const missing = members.filter((m) => typeof record[m] !== 'string');
    if (missing.length > 0) return { ok: false, message: `keys[${i}]: a ${String(record.kty)} key needs ${missing.join(', ')}` };
    if (PRIVATE_MEMBERS.some((m) => m in record)) {
      return { ok: false, message: `keys[${i}] is a private key; publish only the public part (without "d")` };
    }
    out.push(record);
  }
  if (out.length === 0) return { ok: false, message: 'the key set holds no key' };
  return { ok: true, value: out };
}

/** `$2a$`, `$2b$` or `$2y$`, a two-digit cost, 53 characters of salt and hash. */
const BCRYPT_HASH = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;

/**
 * An htpasswd file of bcrypt entries (`htpasswd -B`). Blank lines and `#` comments are
 * skipped; any other kind of entry (MD5 `$apr1$`, `{SHA}`, crypt, plain text) is refused:
 * those hashes are cheap to brute-force, and plain text would compare without bcrypt.
 * Messages never quote a hash.
 */
export function parseHtpasswd(text: string): Parsed<[string, string][]> {
  const users: [string, string][] = [];
  const seen = new Set<string>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) return { ok: false, message: `line ${i + 1}: expected user:hash` };
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (!BCRYPT_HASH.test(hash)) {
      return { ok: false, message: `line ${i + 1}: the entry of "${user}" is not a bcrypt hash; MD5, SHA, crypt and plain-text entries are refused (make one with htpasswd -B)` };
    }
    if (seen.has(user)) return { ok: false, message: `line ${i + 1}: "${user}" is listed twice` };
    seen.add(user);
    users.push([user, hash]);
  }
  if (users.length === 0) return { ok: false, message: 'the file lists no user' };
  return { ok: true, value: users };
}

/** Reads and parses a file; the message names the file. */
export function readParsed<T>(file: string, parse: (text: string) => Parsed<T>): Parsed<T> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a folder, not a file' : (error as Error).message;
    return { ok: false, message: `${file}: ${why}` };
  }
  const parsed = parse(text);
  return parsed.ok ? parsed : { ok: false, message: `${file}: ${parsed.message}` };
}

/** Reads every route file of `doc` (paths relative to `baseDir`); errors point at the field naming the file. */
export function readRouteFiles(doc: ConfigDocument, baseDir: string): { readonly files: RouteFiles; readonly errors: PendingError[] } {
  const files = new Map<string, unknown>();
  const errors: PendingError[] = [];
  doc.listeners.forEach((listener, li) => {
    listener.routes.forEach((route, ri) => {
      const at = ['listeners', li, 'routes', ri, 'auth'];
      const jwksFile = route.auth?.jwt?.jwks.file;
      if (jwksFile !== undefined) read(jwksFile, parseJwks, [...at, 'jwt', 'jwks', 'file']);
      const usersFile = route.auth?.basic?.usersFile;
      if (usersFile !== undefined) read(usersFile, parseHtpasswd, [...at, 'basic', 'usersFile']);
    });
  });
  return { files, errors };

  function read<T>(relative: string, parse: (text: string) => Parsed<T>, path: (string | number)[]): void {
    const absolute = nodePath.resolve(baseDir, relative);
    if (files.has(absolute)) return;
    const parsed = readParsed(absolute, parse);
    if (parsed.ok) files.set(absolute, parsed.value);
    else errors.push({ path, message: parsed.message });
  }
}
