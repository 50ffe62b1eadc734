// The GRPO policy loss with TRL's variants (GRPOTrainer._compute_loss, TRL 1.10): clipped
// importance ratios (token-level or GSPO's sequence-level), two-sided clipping (delta), KL to a
// reference policy (optionally bias-corrected), the grpo / bnpo / dr_grpo / dapo aggregations, the
// cispo / sapo / luspo / vespo objectives, the off-policy sequence mask, the high-entropy token mask,
// a sampler importance-sampling ratio and an entropy bonus (docs/formulas.md).
import * as tf from '@tensorflow/tfjs';
import { customOp } from '../ops/custom_grad.js';
import { GRPO_LOSS_TYPES, type GrpoLossType } from '../train/config.js';

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
  /** The sampler's log-probs of the completion tokens (TRL's sampling_per_token_logps): [B, T].
   * Read by the off-policy mask only; default oldLogp. */
  samplingLogp?: tf.Tensor2D;
  /** Per-token entropies of the policy: [B, T]. Needed by topEntropyQuantile < 1 and entropyCoef != 0;
   * when given, the `entropy` metric is their masked mean. */
  entropies?: tf.Tensor2D;
  /** Sampler importance-sampling ratio (importanceSamplingCorrection's `ratio`): [B, T] or [B, 1].
   * Multiplies the per-token loss (every loss type but vespo, where it enters the Gamma weight). */
  importanceSamplingRatio?: tf.Tensor2D;
}

export type LossType = GrpoLossType;

/** The loss types grpoLoss implements (docs/formulas.md); GrpoConfig's loss_type takes the same. */
export const LOSS_TYPES: readonly LossType[] = GRPO_LOSS_TYPES;

export interface GrpoLossOptions {
  lossType?: LossType;
  /** Lower clip range (default 0.2). */
  epsilon?: number;
  /** Upper clip range (default = epsilon; DAPO uses 0.28). For cispo it is the absolute cap of the
   * ratio (ScaleRL's epsilon_max, e.g. 5.0) and has no default: cispo without it is refused. */
  epsilonHigh?: number;
  /** Two-sided clipping: the unclipped ratio is capped at delta (default none). */
  delta?: number;
  /** KL coefficient (default 0; DeepSeekMath used 0.04). */
  beta?: number;
  /** DeepSeek-V3.2's unbiased KL: the k3 term times the importance ratio (default false). */
  useBiasCorrectionKl?: boolean;
  /** dr_grpo's constant normaliser (required for dr_grpo). */
  maxCompletionLength?: number;
  /** The normaliser of dapo, cispo and vespo: active tokens in the whole generation batch (default: this batch's). */
  activeTokens?: number;
  /** 'token' (GRPO, default) or 'sequence' (GSPO: one ratio per completion, the masked mean log-ratio). */
  importanceSampling?: 'token' | 'sequence';
  /** DeepSeek-V3.2's off-policy sequence mask: a completion with A < 0 whose mean
   * (samplingLogp - logp) exceeds this is dropped (default: off). */
  offPolicyMaskThreshold?: number;
  /** Keep only the tokens in this top share by entropy (default 1 = all; 0.2 in "Beyond the 80/20 Rule"). */
  topEntropyQuantile?: number;
  /** Entropy bonus coefficient: the loss minus coef x the mean entropy (default 0). */
  entropyCoef?: number;
  /** sapo's gate temperature where A > 0 (default 1.0). */
  sapoTemperaturePos?: number;
  /** sapo's gate temperature where A <= 0 (default 1.05). */
  sapoTemperatureNeg?: number;
  /** vespo's Gamma weight parameters, "pos" where A >= 0 (defaults k 2, lambda 3; neg: k 3, lambda 2). */
  vespoKPos?: number;
  vespoLambdaPos?: number;
  vespoKNeg?: number;
  vespoLambdaNeg?: number;
}

export interface GrpoMetrics {
  /** Masked mean of the (bias-corrected when asked) k3 term; when beta != 0. */
  kl?: number;
  clipRatioLow: number;
  clipRatioHigh: number;
  clipRatioRegion: number;
  /** Masked mean of inputs.entropies, when given (TRL's `entropy`). */
  entropy?: number;
  /** cispo only: share of tokens with ratio > epsilonHigh and A > 0 (TRL's `cispo_clip_ratio`). */
  cispoClipRatio?: number;
  /** vespo only: masked mean of the Gamma weight (TRL's `vespo/phi_seq_mean`). */
  vespoPhiMean?: number;
  /** The loss before the entropy bonus; when entropyCoef != 0 (TRL's `policy_loss`). */
  policyLoss?: number;
}

/** Identity whose gradient is zero (the detached old log-probs of a single-update step). */
const stopGradient = customOp((x: tf.Tensor) => ({ value: x.clone(), gradFunc: (dy: tf.Tensor) => [tf.zerosLike(dy)] }));

/**
 * `f` evaluated off the tape, its inputs getting zero gradient: the masks and weights TRL builds
 * from detached tensors. tfjs has no gradient for comparisons, logical ops or topk, so a mask that
 * reads logp (through a detached copy or not) must be built here rather than after stopGradient.
 */
function offTape<In extends tf.Tensor[]>(f: (...x: In) => tf.Tensor): (...x: In) => tf.Tensor {
  return (...x: In) => {
    const shapes = x.map((t) => t.shape);
    return customOp((...y: In) => ({ value: f(...y), gradFunc: () => shapes.map((s) => tf.zeros(s)) }))(...x);
  };
}

/** The metrics as device scalars (kept: the caller disposes them), read when convenient. */
export type GrpoMetricTensors = { [K in keyof GrpoMetrics]: tf.Scalar };

/**
 * The loss and its metrics. Metrics are host numbers for logging (one device read per call).
 * `loss` is differentiable in inputs.logp.
 */
export function grpoLoss(inputs: GrpoInputs, opts: GrpoLossOptions = {}): { loss: tf.Scalar; metrics: GrpoMetrics } {
  const { loss, metrics: t } = grpoLossTerms(inputs, opts);
  const keys = Object.keys(t) as (keyof GrpoMetrics)[];
  const packed = tf.tidy(() => tf.stack(keys.map((k) => t[k]!)));
  const values = packed.dataSync(); // the one device read
  packed.dispose();
  tf.dispose(Object.values(t));
  const metrics = Object.fromEntries(keys.map((k, i) => [k, values[i]])) as unknown as GrpoMetrics;
  return { loss, metrics };
}

function validate(inputs: GrpoInputs, opts: GrpoLossOptions, lossType: LossType): void {
  const [B, T] = inputs.logp.shape;
  const same = (name: string, x?: tf.Tensor) => {
    if (x && (x.rank !== 2 || x.shape[0] !== B || x.shape[1] !== T)) throw new Error(`grpoLoss: ${name} must be [B, T] = [${B}, ${T}], got [${x.shape.join(', ')}]`);
  };
  same('mask', inputs.mask);
  same('oldLogp', inputs.oldLogp);
  same('refLogp', inputs.refLogp);
  same('samplingLogp', inputs.samplingLogp);
  same('entropies', inputs.entropies);
  if (inputs.advantages.rank !== 1 || inputs.advantages.shape[0] !== B) throw new Error(`grpoLoss: advantages must be [B] = [${B}], got [${inputs.advantages.shape.join(', ')}]`);
  const r = inputs.importanceSamplingRatio;
  if (r && (r.rank !== 2 || r.shape[0] !== B || (r.shape[1] !== T && r.shape[1] !== 1))) {
    throw new Error(`grpoLoss: importanceSamplingRatio must be [B, T] = [${B}, ${T}] (token modes) or [B, 1] = [${B}, 1] (sequence modes), got [${r.shape.join(', ')}]`);
  }
  const level = opts.importanceSampling ?? 'token';
  if (level !== 'token' && level !== 'sequence') throw new Error(`grpoLoss: unknown importanceSampling "${String(level)}"; expected token or sequence`);
  if ((opts.beta ?? 0) !== 0 && !inputs.refLogp) throw new Error('grpoLoss: beta != 0 needs refLogp');
  if (lossType === 'dr_grpo' && !opts.maxCompletionLength) throw new Error('grpoLoss: dr_grpo needs maxCompletionLength');
  if (lossType === 'cispo' && opts.epsilonHigh === undefined) {
    throw new Error('grpoLoss: cispo needs epsilonHigh, the absolute cap of the ratio (ScaleRL recommends 5.0); TRL would fall back to epsilon, a cap below 1');
  }
  if (lossType === 'luspo' && level !== 'sequence') throw new Error("grpoLoss: luspo needs importanceSampling: 'sequence' (it scales GSPO's sequence-level loss by the length)");
  const q = opts.topEntropyQuantile ?? 1;
  if (!(q >= 0 && q <= 1)) throw new Error(`grpoLoss: topEntropyQuantile must be in [0, 1], got ${q}`);
  if (q < 1 && !inputs.entropies) throw new Error('grpoLoss: topEntropyQuantile < 1 needs inputs.entropies');
  if ((opts.entropyCoef ?? 0) !== 0 && !inputs.entropies) throw new Error('grpoLoss: entropyCoef != 0 needs inputs.entropies');
  if (opts.offPolicyMaskThreshold !== undefined && !Number.isFinite(opts.offPolicyMaskThreshold)) throw new Error(`grpoLoss: offPolicyMaskThreshold must be a finite number, got ${opts.offPolicyMaskThreshold}`);
  for (const k of ['sapoTemperaturePos', 'sapoTemperatureNeg'] as const) {
    if (opts[k] !== undefined && !(opts[k]! > 0)) throw new Error(`grpoLoss: ${k} must be > 0, got ${opts[k]}`);
  }
}

// docs/formulas.md, "High-entropy token mask"
/**
 * 1 where a token is active and its entropy >= the (1 - topEntropyQuantile) quantile of the active
 * tokens' entropies (torch.quantile, linear interpolation), else 0. The quantile stays on the
 * device: a descending tf.topk over all entries (inactive ones set to -inf) puts the k active
 * values first, and the two order statistics around rank q (k - 1) are gathered by tensor index.
 */
const highEntropyMask = (q: number) => offTape((ent: tf.Tensor, m: tf.Tensor) => {
  const n = ent.size;
  const flat = tf.where(m.reshape([n]).greater(0), ent.reshape([n]).toFloat(), tf.fill([n], -Infinity));
  const desc = tf.topk(flat, n).values;
  const k = m.sum();
  let pos = k.sub(1).mul(q); // ascending rank; float32 rounding of an integral rank is snapped back
  pos = tf.where(pos.sub(pos.round()).abs().lessEqual(1e-5), pos.round(), pos);
  const lo = pos.floor();
  const at = (rank: tf.Tensor) => tf.gather(desc, tf.clipByValue(k.sub(1).sub(rank), 0, n - 1).toInt()); // ascending rank -> descending index
  const vLo = at(lo);
  const threshold = vLo.add(pos.sub(lo).mul(at(pos.ceil()).sub(vLo)));
  return tf.logicalAnd(ent.mul(m).greaterEqual(threshold), m.greater(0)).toFloat();
});

// docs/formulas.md, "Off-policy sequence mask"
/** [B, 1]: 0 for a completion with A < 0 whose masked mean of (samplingLogp - logp) exceeds the threshold. */
const offPolicyMask = (threshold: number) => offTape((sampling: tf.Tensor, logp: tf.Tensor, m: tf.Tensor, A: tf.Tensor) => {
  const meanKl = sampling.sub(logp).mul(m).sum(-1, true).div(tf.maximum(m.sum(-1, true), 1));
  return tf.logicalOr(A.greaterEqual(0), meanKl.lessEqual(threshold)).toFloat();
});

// docs/formulas.md, "VESPO"
/** [B, 1]: the Gamma weight phi(w) of the sequence ratio w (clamped as TRL), detached; NaN/inf -> 0. */
const gammaWeights = (k: { kPos: number; lPos: number; kNeg: number; lNeg: number }, withIs: boolean) =>
  offTape((logRatio: tf.Tensor, m: tf.Tensor, A: tf.Tensor, ...isRatio: tf.Tensor[]) => {
    const lower = Math.log(1e-8);
    let seq = tf.clipByValue(logRatio, -20, 20).mul(m).sum(-1, true);
    if (withIs) seq = seq.add(tf.clipByValue(tf.log(isRatio[0]), lower, 20).sum(-1, true)); // every column, as TRL
    const logW = tf.clipByValue(seq, lower, 20);
    const pos = A.greaterEqual(0).toFloat();
    const kSeq = pos.mul(k.kPos - k.kNeg).add(k.kNeg);
    const lSeq = pos.mul(Math.max(k.lPos, 1e-4) - Math.max(k.lNeg, 1e-4)).add(Math.max(k.lNeg, 1e-4));
    const phi = tf.exp(lSeq.add(kSeq.mul(logW)).sub(lSeq.mul(tf.exp(logW))));
    return tf.where(tf.isFinite(phi), phi, tf.zerosLike(phi));
  });

// docs/formulas.md, "The ratio and the clipped per-token loss", "Loss aggregations", "CISPO",
// "SAPO", "LUSPO", "VESPO", "Bias-corrected KL", "Off-policy sequence mask", "High-entropy token
// mask", "Importance-sampling correction" and "Entropy bonus"
/** grpoLoss with the metrics left on the device (no host read: for a training step's hot path). */
export function grpoLossTerms(inputs: GrpoInputs, opts: GrpoLossOptions = {}): { loss: tf.Scalar; metrics: GrpoMetricTensors } {
  const lossType = opts.lossType ?? 'grpo';
  if (!LOSS_TYPES.includes(lossType)) throw new Error(`grpoLoss: unknown lossType "${String(lossType)}"; expected one of ${LOSS_TYPES.join(', ')}`);
  validate(inputs, opts, lossType);
  const epsLow = opts.epsilon ?? 0.2;
  const epsHigh = opts.epsilonHigh ?? epsLow;
  const beta = opts.beta ?? 0;
  const entropyCoef = opts.entropyCoef ?? 0;
  const topQ = opts.topEntropyQuantile ?? 1;
  const metrics: GrpoMetricTensors = {} as GrpoMetricTensors;
  const loss = tf.tidy(() => {
    const { logp, mask, advantages, entropies } = inputs;
    const m = mask.toFloat();
    const A = advantages.expandDims(1); // [B, 1]
    const old = inputs.oldLogp ?? stopGradient(logp);
    const logRatio = logp.sub(old);
    const logW = opts.importanceSampling === 'sequence' ? logRatio.mul(m).sum(-1, true).div(tf.maximum(m.sum(-1, true), 1)) : logRatio;
    const coef1 = tf.exp(logW); // [B, T] or [B, 1]
    const maskedMean = (x: tf.Tensor) => x.mul(tf.onesLike(logp)).mul(m).sum().div(tf.maximum(m.sum(), 1)) as tf.Scalar;
    const offPolicy = opts.offPolicyMaskThreshold !== undefined
      ? offPolicyMask(opts.offPolicyMaskThreshold)(inputs.samplingLogp ?? old, logp, m, A) : undefined;
    const entropyMask = topQ < 1 ? highEntropyMask(1 - topQ)(entropies!, m) : undefined;

    let kl: tf.Tensor | undefined;
    if (beta !== 0) {
      kl = klEstimate(logp, inputs.refLogp!, 'k3');
      if (opts.useBiasCorrectionKl) kl = kl.mul(coef1);
    }
    let perToken: tf.Tensor;
    let phi: tf.Tensor | undefined;
    if (lossType === 'cispo') {
      perToken = tf.minimum(stopGradient(coef1), epsHigh).mul(A).mul(logp).neg();
    } else if (lossType === 'sapo') {
      const tau = A.greater(0).toFloat().mul((opts.sapoTemperaturePos ?? 1) - (opts.sapoTemperatureNeg ?? 1.05)).add(opts.sapoTemperatureNeg ?? 1.05);
      perToken = tf.sigmoid(tau.mul(coef1.sub(1))).mul(4).div(tau).mul(A).neg();
    } else if (lossType === 'vespo') {
      const isRatio = inputs.importanceSamplingRatio ? [inputs.importanceSamplingRatio] : [];
      phi = gammaWeights({ kPos: opts.vespoKPos ?? 2, lPos: opts.vespoLambdaPos ?? 3, kNeg: opts.vespoKNeg ?? 3, lNeg: opts.vespoLambdaNeg ?? 2 }, isRatio.length > 0)(logRatio, m, A, ...isRatio);
      perToken = phi.mul(A).mul(logp).neg();
    } else {
      const c1 = opts.delta !== undefined ? tf.minimum(coef1, opts.delta) : coef1;
      const c2 = tf.clipByValue(coef1, 1 - epsLow, 1 + epsHigh);
      perToken = tf.minimum(c1.mul(A), c2.mul(A)).neg();
    }
    // TRL's order: off-policy mask, entropy mask, sampler IS ratio, then + beta * kl. The shape
    // stays [B, 1] until a [B, T] factor broadcasts it (luspo's mean runs over that shape).
    if (offPolicy) perToken = perToken.mul(offPolicy);
    if (entropyMask) perToken = perToken.mul(entropyMask);
    if (inputs.importanceSamplingRatio && lossType !== 'vespo') perToken = perToken.mul(inputs.importanceSamplingRatio);
    if (kl) perToken = perToken.add(kl.mul(beta));

    const masked = perToken.mul(m);
    const B = logp.shape[0];
    const tokenNormaliser = tf.maximum(opts.activeTokens !== undefined ? tf.scalar(opts.activeTokens) : m.sum(), 1);
    const tokenNormalised = lossType === 'dapo' || lossType === 'cispo' || lossType === 'vespo';
    let out: tf.Tensor;
    if (lossType === 'grpo' || lossType === 'sapo') out = masked.sum(-1).div(tf.maximum(m.sum(-1), 1)).mean();
    else if (lossType === 'bnpo') out = masked.sum().div(tf.maximum(m.sum(), 1));
    else if (lossType === 'dr_grpo') out = masked.sum().div(B * opts.maxCompletionLength!);
    else if (lossType === 'luspo') out = perToken.mul(m.sum(-1, true)).mean();
    else out = masked.sum().div(tokenNormaliser);

    if (entropyCoef !== 0) {
      metrics.policyLoss = tf.keep(out.clone() as tf.Scalar);
      const eff = entropyMask ? m.mul(entropyMask) : m;
      const weighted = entropies!.mul(eff).sum();
      const bonus = tokenNormalised ? weighted.div(tokenNormaliser) : weighted.div(tf.maximum(eff.sum(), 1));
      out = out.sub(bonus.mul(entropyCoef));
    }

    // Metrics: masked means over the tokens, sequence-level values broadcast over them.
    const keep = (x: tf.Scalar) => tf.keep(x);
    const low = tf.logicalAnd(tf.less(coef1, 1 - epsLow), tf.less(A, 0)).toFloat();
    const high = tf.logicalAnd(tf.greater(coef1, 1 + epsHigh), tf.greater(A, 0)).toFloat();
    metrics.clipRatioLow = keep(maskedMean(low));
    metrics.clipRatioHigh = keep(maskedMean(high));
    metrics.clipRatioRegion = keep(maskedMean(tf.maximum(low, high)));
    if (kl) metrics.kl = keep(maskedMean(kl));
    if (entropies) metrics.entropy = keep(maskedMean(entropies));
    if (lossType === 'cispo') metrics.cispoClipRatio = keep(maskedMean(tf.logicalAnd(tf.greater(coef1, epsHigh), tf.greater(A, 0)).toFloat()));
    if (phi) metrics.vespoPhiMean = keep(maskedMean(phi));
    return out as tf.Scalar;
  });
  return { loss, metrics };
}
