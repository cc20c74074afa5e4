import { request } from 'undici';
import { parseJwks } from '../config/route-files';
import type { JsonWebKey } from '../config/types';
import { JWKS_UNKNOWN_KID_COOLDOWN_MS } from '../config/defaults';

/** Largest key set read from a JWKS URL; a real one is a few KiB. */
const MAX_JWKS_BYTES = 1024 * 1024;

/**
 * A JSON Web Key Set fetched from its URL: fetched on first use, refreshed in the background
 * when older than the refresh interval, and at once for a token whose `kid` it lacks (at most
 * once per cooldown, so a stream of forged kids costs one fetch). A failed fetch keeps the
 * last good keys. Shared by every route (and every config) naming the same URL and settings,
 * so a reload keeps the keys it already has.
 */
export class RemoteKeySet {
  private keys: readonly JsonWebKey[] | undefined;
  private fetchedAt = -Infinity;
  private lastKidRefresh = -Infinity;
  private inflight: Promise<void> | undefined;
  /** Why the last fetch failed; undefined after a success. */
  lastError: string | undefined;

  constructor(
    readonly url: string,
    private readonly timeoutMs: number,
    private readonly refreshIntervalMs: number,
  ) {}

  /** The keys to verify with: waits for the first fetch only; undefined when no fetch ever succeeded. */
  async current(): Promise<readonly JsonWebKey[] | undefined> {
    if (this.keys === undefined) {
      await this.refresh();
      return this.keys;
    }
    if (performance.now() - this.fetchedAt >= this.refreshIntervalMs) void this.refresh();
    return this.keys;
  }

  /** A token named a kid the keys lack: refresh now unless the cooldown forbids; true when the keys may have changed. */
  async refreshForUnknownKid(): Promise<boolean> {
    const now = performance.now();
    if (now - this.lastKidRefresh < JWKS_UNKNOWN_KID_COOLDOWN_MS) return false;
    this.lastKidRefresh = now;
    await this.refresh();
    return true;
  }

  /** One fetch at a time; callers during a fetch wait for it. */
  private refresh(): Promise<void> {
    this.inflight ??= this.fetchKeys().finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  private async fetchKeys(): Promise<void> {
    try {
      const res = await request(this.url, {
        headers: { accept: 'application/json' },
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new Error(`HTTP ${res.statusCode}`);
      }
      const declared = Number(res.headers['content-length'] ?? 0);
      if (declared > MAX_JWKS_BYTES) {
        await res.body.dump();
        throw new Error(`the key set is larger than ${MAX_JWKS_BYTES} bytes`);
      }
      const text = await readLimited(res.body, MAX_JWKS_BYTES);
      const parsed = parseJwks(text);
      if (!parsed.ok) throw new Error(parsed.message);
      this.keys = parsed.value;
      this.fetchedAt = performance.now();
      this.lastError = undefined;
    } catch (error) {
      // The last good keys stay; the next request after the interval tries again.
      this.fetchedAt = performance.now();
      this.lastError = `${this.url}: ${(error as Error).message}`;
    }
  }
}

async function readLimited(body: AsyncIterable<Buffer>, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) throw new Error(`the key set is larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const sets = new Map<string, RemoteKeySet>();

/** The shared key set of `url` with these settings. */
export function remoteKeySet(url: string, timeoutMs: number, refreshIntervalMs: number): RemoteKeySet {
  const key = `${url}\u0000${timeoutMs}\u0000${refreshIntervalMs}`;
  let set = sets.get(key);
  if (set === undefined) {
    set = new RemoteKeySet(url, timeoutMs, refreshIntervalMs);
    sets.set(key, set);
  }
  return set;
}
