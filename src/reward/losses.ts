// Reward-model losses: Bradley-Terry on per-criterion pairs (TRL RewardTrainer semantics) and a
// pointwise binary cross-entropy on graded criteria.
import * as tf from '@tensorflow/tfjs';

// docs/formulas.md, "Bradley-Terry"
/**
 * -mean(log sigmoid(r_chosen - r_rejected - margin)), plus centerCoefficient * mean((r_c + r_r)^2)
 * when given (keeps rewards centred around zero, as TRL's center_rewards_coefficient).
 */
export function bradleyTerryLoss(chosen: tf.Tensor1D, rejected: tf.Tensor1D, opts: { margin?: tf.Tensor1D; centerCoefficient?: number } = {}): tf.Scalar {
  return tf.tidy(() => {
    let diff = chosen.sub(rejected);
    if (opts.margin) diff = diff.sub(opts.margin);
    // -log sigmoid(d) = softplus(-d). (tf.logSigmoid, a customGrad, fails on inputs made inside
    // the same tidy under a gradient tape in tfjs 4.22.)
    let loss = tf.softplus(diff.neg()).mean();
    if (opts.centerCoefficient) loss = loss.add(chosen.add(rejected).square().mean().mul(opts.centerCoefficient));
    return loss as tf.Scalar;
  });
}

// docs/formulas.md, "Pointwise loss"
/** Mean binary cross-entropy of logits against targets in [0, 1] (1 = criterion met). */
export function pointwiseLoss(logits: tf.Tensor1D, targets: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    // softplus(z) - y*z = -[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))], stable for any z.
    return tf.softplus(logits).sub(targets.mul(logits)).mean() as tf.Scalar;
  });
}
