// Naive causal-LM references for the tests: full [B, T, V] logits, a full log-softmax, a one-hot
// pick, and tfjs autodiff through all of it. Slow and memory-hungry on purpose: nothing here
// shares code with the library's fused LM head (src/ops/lm_head.ts) or its chunked log-softmax
// (src/ops/logprobs.ts), so the library is checked against it.
import * as tf from '@tensorflow/tfjs';

/**
 * transformers' causal-LM loss: mean cross-entropy of logits[:, :-1] / temperature predicting
 * ids[:, 1:]. With `mask` [B, T] (1 = counts), only positions whose TARGET is masked in count
 * (SFT masks prompt tokens this way), averaged over those targets.
 */
export function nextTokenLoss(logits: tf.Tensor3D, ids: tf.Tensor2D, mask?: tf.Tensor2D, opts: { temperature?: number } = {}): tf.Scalar {
  return tf.tidy(() => {
    const [B, T, V] = logits.shape;
    const logp = tf.logSoftmax(logits.slice([0, 0, 0], [B, T - 1, V]).div(opts.temperature ?? 1).reshape([-1, V]));
    const target = tf.oneHot(ids.slice([0, 1], [B, T - 1]).reshape([-1]).toInt(), V);
    const picked = logp.mul(target).sum(-1); // [B * (T - 1)]
    if (!mask) return picked.sum().neg().div(B * (T - 1)) as tf.Scalar;
    const m = mask.slice([0, 1], [B, T - 1]).reshape([-1]).toFloat();
    return picked.mul(m).sum().div(tf.maximum(m.sum(), 1)).neg() as tf.Scalar;
  });
}

/** Entropy -sum p log p of softmax(logits / temperature) over the last axis: logits' shape
 * without the last axis. */
export function tokenEntropy(logits: tf.Tensor, opts: { temperature?: number } = {}): tf.Tensor {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits.div(opts.temperature ?? 1));
    return tf.exp(logp).mul(logp).sum(-1).neg();
  });
}

/**
 * log softmax(logits / temperature)[ids] at positions `rows` of the flattened [B * T] batch, and
 * the entropy there: logits [B, T, V] (e.g. model.forward), rows and ids [N]. Differentiable in
 * the logits through tfjs' own gradients of logSoftmax, gather and a one-hot product.
 */
export function pickedLogProbs(logits: tf.Tensor3D, rows: number[], ids: number[], temperature = 1): { logp: tf.Tensor1D; entropy: tf.Tensor1D } {
  return tf.tidy(() => {
    const [B, T, V] = logits.shape;
    const logp = tf.gather(tf.logSoftmax(logits.div(temperature)).reshape([B * T, V]), tf.tensor1d(rows, 'int32')); // [N, V]
    return {
      logp: logp.mul(tf.oneHot(tf.tensor1d(ids, 'int32'), V)).sum(-1) as tf.Tensor1D,
      entropy: tf.exp(logp).mul(logp).sum(-1).neg() as tf.Tensor1D,
    };
  });
}
