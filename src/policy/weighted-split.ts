import type { WeightedSplit } from '../config/types';

/**
 * The cluster at `point` (in [0, 1)) of the split's weights laid end to end: a random point
 * splits requests by weight; a point from a hash keeps one key on one side for as long as the
 * weights stay the same.
 */
export function pickWeighted(split: WeightedSplit, point: number): string {
  let target = point * split.totalWeight;
  const clusters = split.clusters;
  for (let i = 0; i < clusters.length; i++) {
    const entry = clusters[i];
    if (target < entry.weight) return entry.cluster;
    target -= entry.weight;
  }
  // Rounding at the very end of the range: the last cluster with a weight.
  for (let i = clusters.length - 1; i >= 0; i--) if (clusters[i].weight > 0) return clusters[i].cluster;
  return clusters[0].cluster;
}
