// Activation checkpointing (Chen et al. 2016; PyTorch's torch.utils.checkpoint, transformers'
// gradient_checkpointing): a block keeps only its input for the backward pass and runs its
// forward again there, under its own gradient tape.
import * as tf from '@tensorflow/tfjs';
import { customOp } from './custom_grad.js';

/** True while tfjs records operations for a gradient (inside tf.grad / variableGrads' function). */
export function recordingGradients(): boolean {
  return tf.engine().state.gradientDepth > 0;
}

/**
 * y = f(x, context) where the backward pass recomputes f instead of keeping its intermediates.
 *
 * Why it matters here: tfjs keeps every tensor a recorded op saved, and every intermediate gradient,
 * until the whole backward pass ends. For a decoder layer that is tens of MB per layer at T = 128
 * and grows with T^2 (attention); checkpointed, a layer holds its [B, T, H] input, and one layer's
 * intermediates exist at a time during backprop.
 *
 * `params` are the trainable variables f reads (they receive gradients); f must reach them itself
 * (through the same tensor objects). `context` holds tensors f reads that are not differentiated
 * (rotary tables, masks); they are kept with x, so they may be disposed by the caller before the
 * backward pass runs. f must be deterministic (replay any random seeds).
 * Outside a gradient recording this is just f(x, context).
 */
export function checkpoint(
  f: (x: tf.Tensor, context: tf.Tensor[]) => tf.Tensor,
  x: tf.Tensor,
  context: tf.Tensor[],
  params: tf.Variable[],
): tf.Tensor {
  if (!recordingGradients()) return f(x, context);
  // The params are inputs of the op (so they receive gradients); f reads them itself.
  const op = customOp((xi: tf.Tensor, ..._params: tf.Variable[]) => ({
    value: f(xi, context),
    save: [xi, ...context],
    gradFunc: (dy, saved) => {
      const [xs, ...ctx] = saved;
      return nestedGrads((xr) => f(xr, ctx), xs, params, dy);
    },
  }));
  return op(x, ...params);
}

/**
 * Gradients of f(x) against dy with respect to x and params, computed while an outer backward
 * pass is running. tfjs has one active tape: a gradient taken during backprop would replace the
 * outer tape and then clear it (the outer pass fails at its end and leaks what it saved), so the
 * outer tape is set aside and put back.
 */
function nestedGrads(f: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor, params: tf.Variable[], dy: tf.Tensor): tf.Tensor[] {
  const state = tf.engine().state;
  if (state.gradientDepth !== 0) throw new Error('checkpoint: higher-order gradients through a checkpointed block are not supported');
  const outer = state.activeTape;
  try {
    return tf.grads((xr: tf.Tensor) => f(xr))([x, ...params], dy);
  } finally {
    state.activeTape = outer;
  }
}
