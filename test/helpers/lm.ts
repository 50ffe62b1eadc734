// Loss helpers shared by the model tests.
import * as tf from '@tensorflow/tfjs';

/** transformers' causal-LM loss: mean cross-entropy of logits[:, :-1] predicting ids[:, 1:]. */
export function nextTokenLoss(logits: tf.Tensor3D, ids: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const [B, T, V] = logits.shape;
    const logp = tf.logSoftmax(logits.slice([0, 0, 0], [B, T - 1, V]).reshape([-1, V]));
    const target = tf.oneHot(ids.slice([0, 1], [B, T - 1]).reshape([-1]).toInt(), V);
    return logp.mul(target).sum().neg().div(B * (T - 1)) as tf.Scalar;
  });
}
