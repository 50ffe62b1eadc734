// Global-norm gradient clipping, as torch.nn.utils.clip_grad_norm_.
import * as tf from '@tensorflow/tfjs';

/**
 * Scales every gradient by min(1, maxNorm / (total + 1e-6)) where total is the 2-norm of all
 * gradients together, and returns the clipped gradients and the total norm BEFORE clipping (a
 * scalar tensor: reading it is the caller's choice of host sync). A non-finite total propagates
 * (torch's behaviour): the guard downstream sees it and stops or skips the step.
 */
export function clipByGlobalNorm(grads: Map<string, tf.Tensor>, maxNorm: number): { grads: Map<string, tf.Tensor>; norm: tf.Scalar } {
  const out = new Map<string, tf.Tensor>();
  let norm: tf.Scalar | undefined;
  tf.tidy(() => {
    const total = tf.sqrt(tf.addN([...grads.values()].map((g) => g.square().sum()))) as tf.Scalar;
    const coef = tf.minimum(tf.scalar(1), tf.scalar(maxNorm).div(total.add(1e-6)));
    for (const [name, g] of grads) out.set(name, tf.keep(g.mul(coef))); // a Map is not a tidy container
    norm = tf.keep(total);
  });
  return { grads: out, norm: norm! };
}
