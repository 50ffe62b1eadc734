// tf.customGrad with the op's own types. tfjs types a custom op as a function of any number of
// tensors and hands it a save function as its last argument; here the inputs keep their types
// and the tensors to keep for the backward pass are returned with the value.
import * as tf from '@tensorflow/tfjs';

/** What the forward pass of a custom op returns. */
export interface CustomOpResult<Out extends tf.Tensor> {
  value: Out;
  /** Tensors the backward pass reads; they come back as `saved`, in this order. Only what is
   * listed here survives the forward pass (a tensor made inside it is freed after it). */
  save?: tf.Tensor[];
  /** The gradient of each input, in the order of the inputs, for the upstream gradient `dy`. */
  gradFunc: (dy: Out, saved: tf.Tensor[]) => tf.Tensor[];
}

/**
 * An op of tensors `inputs` with a custom gradient (tf.customGrad): `forward` computes the value
 * untaped (inside it nothing is recorded for autodiff) and says how to differentiate it. Tensors
 * closed over rather than passed as inputs get no gradient.
 */
export function customOp<In extends tf.Tensor[], Out extends tf.Tensor>(forward: (...inputs: In) => CustomOpResult<Out>): (...inputs: In) => Out {
  return tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc; // tfjs passes it after the inputs
    const { value, save: keep, gradFunc } = forward(...(args as In));
    if (keep) save(keep);
    return { value, gradFunc };
  });
}
