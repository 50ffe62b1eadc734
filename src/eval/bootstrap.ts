// Seeded percentile bootstrap of a mean (resampling units, e.g. prompts, with replacement).
import { Rng } from '../data/rng.js';

export interface Interval {
  mean: number;
  /** 2.5th and 97.5th percentiles of the resampled means (for level 0.95). */
  low: number;
  high: number;
  /** Standard deviation of the resampled means (HealthBench reports this). */
  std: number;
}

// docs/formulas.md, "Bootstrap intervals"
export function bootstrapMean(values: ArrayLike<number>, opts: { resamples?: number; seed?: number | string; level?: number } = {}): Interval {
  const n = values.length;
  if (n === 0) return { mean: NaN, low: NaN, high: NaN, std: NaN };
  const B = opts.resamples ?? 1000;
  const rng = new Rng(`bootstrap:${opts.seed ?? 0}`);
  const mean = Array.from(values).reduce((a, v) => a + v, 0) / n;
  const means = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += values[rng.int(n)];
    means[b] = s / n;
  }
  means.sort();
  const alpha = (1 - (opts.level ?? 0.95)) / 2;
  const at = (q: number) => means[Math.min(B - 1, Math.max(0, Math.floor(q * B)))];
  const mu = means.reduce((a, v) => a + v, 0) / B;
  const std = Math.sqrt(means.reduce((a, v) => a + (v - mu) ** 2, 0) / Math.max(1, B - 1));
  return { mean, low: at(alpha), high: at(1 - alpha), std };
}

/** Bootstrap of the difference of two paired means (same units, e.g. the same prompts). */
export function bootstrapPairedDifference(a: ArrayLike<number>, b: ArrayLike<number>, opts: { resamples?: number; seed?: number | string } = {}): Interval {
  if (a.length !== b.length) throw new Error(`bootstrapPairedDifference: ${a.length} vs ${b.length} values`);
  return bootstrapMean(Array.from(a, (v, i) => v - b[i]), opts);
}
