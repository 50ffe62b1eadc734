// Importance-sampling correction for a sampler that is not the trainer (TRL 1.10's
// vllm_importance_sampling_correction): the ratio between the trainer's log-probs of the sampled
// tokens at generation time and the sampler's own, truncated (TIS) or masked (MIS), per token or
// per sequence. grpoLoss takes it as inputs.importanceSamplingRatio (docs/formulas.md).
import * as tf from '@tensorflow/tfjs';

export type ImportanceSamplingMode = 'token_truncate' | 'token_mask' | 'sequence_truncate' | 'sequence_mask';

/** The correction modes (TRL's vllm_importance_sampling_mode values). */
export const IMPORTANCE_SAMPLING_MODES: readonly ImportanceSamplingMode[] = ['token_truncate', 'token_mask', 'sequence_truncate', 'sequence_mask'];

export interface ImportanceSamplingOptions {
  /** Default 'sequence_mask' (TRL's default). */
  mode?: ImportanceSamplingMode;
  /** Lower bound C_min (default none). */
  clipMin?: number | null;
  /** Upper bound C_max (default 3; null = none). */
  clipMax?: number | null;
}

/** TRL's logged sampling metrics, as host numbers (0 when there is nothing to average). */
export interface ImportanceSamplingMetrics {
  'sampling/sampling_logp_difference/mean': number;
  'sampling/sampling_logp_difference/max': number;
  'sampling/importance_sampling_ratio/min': number;
  'sampling/importance_sampling_ratio/mean': number;
  'sampling/importance_sampling_ratio/max': number;
}

// docs/formulas.md, "Importance-sampling correction"
/**
 * The correction ratio between `oldLogp` (the trainer's log-probs at generation) and `samplingLogp`
 * (the sampler's), both [B, T] with the completion mask. Token modes give [B, T], sequence modes
 * [B, 1]; truncate clamps to [clipMin, clipMax], mask sets ratios outside it to 0. The ratio is the
 * caller's to dispose; the metrics cost one device read.
 */
export function importanceSamplingCorrection(
  oldLogp: tf.Tensor2D,
  samplingLogp: tf.Tensor2D,
  mask: tf.Tensor2D,
  opts: ImportanceSamplingOptions = {},
): { ratio: tf.Tensor2D; metrics: ImportanceSamplingMetrics } {
  const { ratio, stats } = importanceSamplingTerms(oldLogp, samplingLogp, mask, opts);
  const metrics = samplingMetrics(stats.dataSync()); // the one device read
  stats.dispose();
  return { ratio, metrics };
}

/** TRL's metric names for the five statistics importanceSamplingTerms returns, read from the device. */
export function samplingMetrics(v: ArrayLike<number>): ImportanceSamplingMetrics {
  return {
    'sampling/sampling_logp_difference/mean': v[0],
    'sampling/sampling_logp_difference/max': v[1],
    'sampling/importance_sampling_ratio/min': v[2],
    'sampling/importance_sampling_ratio/mean': v[3],
    'sampling/importance_sampling_ratio/max': v[4],
  };
}

/**
 * importanceSamplingCorrection with its statistics left on the device ([5]: logp difference mean
 * and max, ratio min, mean and max; the caller disposes it and reads it when convenient, e.g. with
 * the step's other metrics, and names it with samplingMetrics).
 */
export function importanceSamplingTerms(
  oldLogp: tf.Tensor2D,
  samplingLogp: tf.Tensor2D,
  mask: tf.Tensor2D,
  opts: ImportanceSamplingOptions = {},
): { ratio: tf.Tensor2D; stats: tf.Tensor1D } {
  const mode = opts.mode ?? 'sequence_mask';
  if (!IMPORTANCE_SAMPLING_MODES.includes(mode)) throw new Error(`importanceSamplingCorrection: unknown mode "${String(mode)}"; expected one of ${IMPORTANCE_SAMPLING_MODES.join(', ')}`);
  const lo = opts.clipMin ?? null;
  const hi = opts.clipMax === undefined ? 3 : opts.clipMax;
  for (const [name, v] of [['clipMin', lo], ['clipMax', hi]] as const) {
    if (v !== null && Number.isNaN(v)) throw new Error(`importanceSamplingCorrection: ${name} is NaN`);
  }
  if (lo !== null && hi !== null && lo >= hi) throw new Error(`importanceSamplingCorrection: clipMin (${lo}) must be less than clipMax (${hi})`);
  if (mode.endsWith('truncate') && lo === null && hi === null) throw new Error(`importanceSamplingCorrection: ${mode} needs clipMin or clipMax`);
  const shape = oldLogp.shape;
  for (const [name, x] of [['samplingLogp', samplingLogp], ['mask', mask]] as const) {
    if (x.rank !== 2 || x.shape[0] !== shape[0] || x.shape[1] !== shape[1]) throw new Error(`importanceSamplingCorrection: ${name} must be [${shape.join(', ')}] like oldLogp, got [${x.shape.join(', ')}]`);
  }
  const sequence = mode.startsWith('sequence');
  let stats: tf.Tensor1D | undefined;
  const ratio = tf.tidy(() => {
    const m = mask.toFloat();
    const diff = oldLogp.sub(samplingLogp).mul(m);
    let r = tf.exp(sequence ? diff.sum(-1, true) : diff);
    if (mode.endsWith('truncate')) {
      r = tf.clipByValue(r, lo ?? -Infinity, hi ?? Infinity);
    } else {
      const outside = tf.logicalOr(r.less(lo ?? -Infinity), r.greater(hi ?? Infinity));
      r = tf.where(outside, tf.zerosLike(r), r);
    }
    // Statistics over the active tokens (the logp difference; the ratio in token modes) or over
    // every sequence (the ratio in sequence modes); 0 when empty.
    const on = m.greater(0);
    const n = m.sum();
    const orZero = (count: tf.Tensor, x: tf.Tensor) => tf.where(count.greater(0), x, tf.zerosLike(x));
    const delta = oldLogp.sub(samplingLogp).abs();
    const rOn = sequence ? tf.onesLike(r).greater(0) : on;
    const rN = sequence ? tf.scalar(r.size) : n;
    const pick = (x: tf.Tensor, fill: number) => tf.where(rOn, x, tf.fill(x.shape, fill));
    stats = tf.keep(tf.stack([
      orZero(n, delta.mul(m).sum().div(tf.maximum(n, 1))),
      orZero(n, tf.where(on, delta, tf.fill(delta.shape, -Infinity)).max()),
      orZero(rN, pick(r, Infinity).min()),
      orZero(rN, pick(r, 0).sum().div(tf.maximum(rN, 1))),
      orZero(rN, pick(r, -Infinity).max()),
    ]) as tf.Tensor1D);
    return r as tf.Tensor2D;
  });
  return { ratio, stats: stats! };
}
