// The GRPO policy loss with TRL's variants: clipped importance ratios (token-level or GSPO's
// sequence-level), optional two-sided clipping (delta), KL to a reference policy, and the
// grpo / bnpo / dr_grpo / dapo aggregations (docs/formulas.md).
import * as tf from '@tensorflow/tfjs';
import { customOp } from '../ops/custom_grad.js';

export type KlKind = 'k1' | 'k2' | 'k3';

// docs/formulas.md, "KL estimators"
/** Per-token KL estimators of KL(policy || reference) from log-probs (Schulman's k1, k2, k3). */
export function klEstimate(logp: tf.Tensor, refLogp: tf.Tensor, kind: KlKind = 'k3'): tf.Tensor {
  return tf.tidy(() => {
    const d = logp.sub(refLogp); // log(pi / pi_ref)
    if (kind === 'k1') return d;
    if (kind === 'k2') return d.square().div(2);
    return tf.exp(d.neg()).add(d).sub(1); // exp(ref - logp) - (ref - logp) - 1
  });
}

export interface GrpoInputs {
  /** Log-probs of the completion tokens under the policy being trained: [B, T]. */
  logp: tf.Tensor2D;
  /** 1 for completion tokens that count, 0 after EOS / padding: [B, T]. */
  mask: tf.Tensor2D;
  /** One advantage per completion: [B]. */
  advantages: tf.Tensor1D;
  /** Log-probs at generation time (numIterations > 1); default: logp itself, detached. */
  oldLogp?: tf.Tensor2D;
  /** Reference policy log-probs (needed when beta != 0). */
  refLogp?: tf.Tensor2D;
}

/** The token aggregations grpoLoss implements (docs/formulas.md). */
export const LOSS_TYPES: readonly NonNullable<GrpoLossOptions['lossType']>[] = ['grpo', 'bnpo', 'dr_grpo', 'dapo'];

export interface GrpoLossOptions {
  lossType?: 'grpo' | 'bnpo' | 'dr_grpo' | 'dapo';
  /** Lower clip range (default 0.2). */
  epsilon?: number;
  /** Upper clip range (default = epsilon; DAPO uses 0.28). */
  epsilonHigh?: number;
  /** Two-sided clipping: the unclipped ratio is capped at delta (default none). */
  delta?: number;
  /** KL coefficient (default 0; DeepSeekMath used 0.04). */
  beta?: number;
  /** dr_grpo's constant normaliser (required for dr_grpo). */
  maxCompletionLength?: number;
  /** dapo's normaliser: active tokens in the whole generation batch (default: this batch's). */
  activeTokens?: number;
  /** 'token' (GRPO) or 'sequence' (GSPO: one ratio per completion, the masked mean log-ratio). */
  importanceSampling?: 'token' | 'sequence';
}

export interface GrpoMetrics {
  kl?: number;
  clipRatioLow: number;
  clipRatioHigh: number;
  clipRatioRegion: number;
}

/** Identity whose gradient is zero (the detached old log-probs of a single-update step). */
const stopGradient = customOp((x: tf.Tensor) => ({ value: x.clone(), gradFunc: (dy: tf.Tensor) => [tf.zerosLike(dy)] }));

/** The metrics as device scalars (kept: the caller disposes them), read when convenient. */
export type GrpoMetricTensors = { [K in keyof GrpoMetrics]: tf.Scalar };

/**
 * The loss and its clip/KL metrics. Metrics are host numbers for logging (one device read per
 * call). `loss` is differentiable in inputs.logp.
 */
export function grpoLoss(inputs: GrpoInputs, opts: GrpoLossOptions = {}): { loss: tf.Scalar; metrics: GrpoMetrics } {
  const { loss, metrics: t } = grpoLossTerms(inputs, opts);
  const read = (x: tf.Scalar) => x.dataSync()[0];
  const metrics: GrpoMetrics = { clipRatioLow: read(t.clipRatioLow), clipRatioHigh: read(t.clipRatioHigh), clipRatioRegion: read(t.clipRatioRegion) };
  if (t.kl) metrics.kl = read(t.kl);
  tf.dispose(Object.values(t));
  return { loss, metrics };
}

// docs/formulas.md, "The ratio and the clipped per-token loss" and "Loss aggregations"
/** grpoLoss with the metrics left on the device (no host read: for a training step's hot path). */
export function grpoLossTerms(inputs: GrpoInputs, opts: GrpoLossOptions = {}): { loss: tf.Scalar; metrics: GrpoMetricTensors } {
  const epsLow = opts.epsilon ?? 0.2;
  const epsHigh = opts.epsilonHigh ?? epsLow;
  const beta = opts.beta ?? 0;
  const lossType = opts.lossType ?? 'grpo';
  if (!LOSS_TYPES.includes(lossType)) throw new Error(`grpoLoss: unknown lossType "${String(lossType)}"; expected one of ${LOSS_TYPES.join(', ')}`);
  if (beta !== 0 && !inputs.refLogp) throw new Error('grpoLoss: beta != 0 needs refLogp');
  if (lossType === 'dr_grpo' && !opts.maxCompletionLength) throw new Error('grpoLoss: dr_grpo needs maxCompletionLength');
  let metricTensors: tf.Tensor[] = [];
  const loss = tf.tidy(() => {
    const { logp, mask, advantages } = inputs;
    const m = mask.toFloat();
    const old = inputs.oldLogp ?? stopGradient(logp);
    let logRatio = logp.sub(old);
    if (opts.importanceSampling === 'sequence') {
      logRatio = logRatio.mul(m).sum(-1).div(tf.maximum(m.sum(-1), 1)).expandDims(1);
    }
    const w = tf.exp(logRatio);
    const coef1 = opts.delta !== undefined ? tf.minimum(w, opts.delta) : w;
    const coef2 = tf.clipByValue(w, 1 - epsLow, 1 + epsHigh);
    const A = advantages.expandDims(1);
    let perToken = tf.minimum(coef1.mul(A), coef2.mul(A)).neg();
    const maskedMean = (x: tf.Tensor) => x.mul(m).sum().div(tf.maximum(m.sum(), 1));
    const low = tf.logicalAnd(tf.less(w, 1 - epsLow), tf.less(A, 0)).toFloat().mul(tf.onesLike(logp));
    const high = tf.logicalAnd(tf.greater(w, 1 + epsHigh), tf.greater(A, 0)).toFloat().mul(tf.onesLike(logp));
    const region = tf.maximum(low, high);
    metricTensors = [maskedMean(low), maskedMean(high), maskedMean(region)];
    if (beta !== 0) {
      const kl = klEstimate(logp, inputs.refLogp!, 'k3');
      perToken = perToken.add(kl.mul(beta));
      metricTensors.push(maskedMean(kl));
    }
    const masked = perToken.mul(m);
    const B = logp.shape[0];
    let out: tf.Tensor;
    if (lossType === 'grpo') out = masked.sum(-1).div(tf.maximum(m.sum(-1), 1)).mean();
    else if (lossType === 'bnpo') out = masked.sum().div(tf.maximum(m.sum(), 1));
    else if (lossType === 'dr_grpo') out = masked.sum().div(B * opts.maxCompletionLength!);
    else out = masked.sum().div(tf.maximum(opts.activeTokens !== undefined ? tf.scalar(opts.activeTokens) : m.sum(), 1));
    metricTensors.forEach((t) => tf.keep(t));
    return out as tf.Scalar;
  });
  const [clipRatioLow, clipRatioHigh, clipRatioRegion, kl] = metricTensors as tf.Scalar[];
  return { loss, metrics: { clipRatioLow, clipRatioHigh, clipRatioRegion, ...(kl ? { kl } : {}) } };
}
