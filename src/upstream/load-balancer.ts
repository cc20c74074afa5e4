/**
 * The load-balancing policies of a cluster (`clusters[].loadBalancer`), over one priority
 * level's endpoints. Each returns the endpoint to use, or undefined when none is healthy;
 * `avoid` (the endpoint a retry would rather not reuse) is returned only when it is the one
 * healthy endpoint left.
 */

export type LoadBalancerKind = 'round-robin' | 'least-request' | 'random' | 'hash';

export interface Balanced {
  readonly healthy: boolean;
  /** Attempts in flight to this endpoint. */
  readonly inFlight: number;
}

/** Fewest attempts in flight; ties go to the first from `start` (the caller rotates it, so ties spread). */
export function pickLeastRequest<E extends Balanced>(endpoints: readonly E[], start: number, avoid: E | undefined): E | undefined {
  const n = endpoints.length;
  let best: E | undefined;
  let fallback: E | undefined;
  for (let i = 0; i < n; i++) {
    const candidate = endpoints[(start + i) % n];
    if (!candidate.healthy) continue;
    if (candidate === avoid) {
      fallback = candidate;
      continue;
    }
    if (best === undefined || candidate.inFlight < best.inFlight) best = candidate;
  }
  return best ?? fallback;
}

/** A healthy endpoint drawn uniformly. */
export function pickRandom<E extends Balanced>(endpoints: readonly E[], draw: () => number, avoid: E | undefined): E | undefined {
  // Starting the usual scan at a random index is uniform over healthy endpoints only when
  // they are contiguous; drawing among the healthy ones is uniform always.
  let healthy = 0;
  for (const e of endpoints) if (e.healthy && e !== avoid) healthy++;
  if (healthy === 0) return avoid !== undefined && avoid.healthy ? avoid : undefined;
  let index = Math.floor(draw() * healthy);
  for (const e of endpoints) {
    if (!e.healthy || e === avoid) continue;
    if (index-- === 0) return e;
  }
  return undefined;
}

/** Points each endpoint has on the ring: enough for an even spread over a handful of endpoints. */
export const HASH_RING_POINTS_PER_ENDPOINT = 160;

/** 32-bit FNV-1a of a string's UTF-16 code units: fast, well spread, stable across processes. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // FNV alone clusters similar keys (x-user: 1, 2, 3...); a final mix spreads them.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

/**
 * Consistent hashing (a ring of points per endpoint, by the endpoint's URL): a key goes to the
 * first point at or after its hash whose endpoint is healthy. When an endpoint leaves (unhealthy,
 * ejected, or removed by a reload) only its keys move; the others keep their endpoint.
 */
export class HashRing<E extends Balanced> {
  private readonly points: Uint32Array;
  private readonly owners: E[];

  constructor(endpoints: readonly E[], nameOf: (endpoint: E) => string) {
    const entries: Array<[number, E]> = [];
    for (const e of endpoints) for (let i = 0; i < HASH_RING_POINTS_PER_ENDPOINT; i++) entries.push([hash32(`${nameOf(e)}#${i}`), e]);
    entries.sort((a, b) => a[0] - b[0]);
    this.points = Uint32Array.from(entries.map((p) => p[0]));
    this.owners = entries.map((p) => p[1]);
  }

  pick(key: string, avoid: E | undefined): E | undefined {
    const points = this.points;
    const n = points.length;
    if (n === 0) return undefined;
    const h = hash32(key);
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid] < h) lo = mid + 1;
      else hi = mid;
    }
    let fallback: E | undefined;
    for (let i = 0; i < n; i++) {
      const owner = this.owners[(lo + i) % n];
      if (!owner.healthy) continue;
      if (owner === avoid) {
        fallback = owner;
        continue;
      }
      return owner;
    }
    return fallback;
  }
}
