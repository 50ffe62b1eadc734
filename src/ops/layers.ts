// Decoder math with no state: RMSNorm, rotary embeddings, linear layers, SwiGLU. Weights are
// passed in as tensors (tf.customGrad gives closure-captured tensors no gradient).
import * as tf from '@tensorflow/tfjs';
import { customOp } from './custom_grad.js';
import { nativeGemm } from './native_gemm.js';

/** RMSNorm over the last axis: x * rsqrt(mean(x^2) + eps) * weight. */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  return tf.tidy(() => x.mul(tf.rsqrt(x.square().mean(-1, true).add(eps))).mul(weight));
}

/**
 * x @ w^T for x [..., in] and w [out, in] (PyTorch's nn.Linear layout), computed as (w @ x^T)^T.
 *
 * Why this shape of product: on wasm only plain (non-transposed, rank-2) matMuls take XNNPACK's
 * fast path, and XNNPACK keeps a packed copy of a matMul's SECOND operand for as long as that
 * tensor lives. With the weight as the first operand, the cached copy is of a short-lived
 * activation, so weights are never held twice (a 0.6B model would not fit wasm's 4 GB otherwise).
 * The gradient keeps the weight first as well, transposing explicitly (in row chunks, so a
 * 151,936-row LM head never needs a full transposed copy) instead of using the slow transposed
 * matMul paths.
 *
 * With `trainWeight` false no gradient is computed for w (frozen base weights under LoRA): for
 * an LM head that saves a [V, H] product per step.
 */
export function linear(x: tf.Tensor, w: tf.Tensor, trainWeight = true): tf.Tensor {
  if (nativeGemm()) return trainWeight ? blasLinearOp(x, w) : blasFrozenLinear(x, w);
  return trainWeight ? linearOp(x, w) : frozenLinear(x, w);
}

/** On a native BLAS transposed operands cost nothing and nothing is packed per tensor: the
 * products as written, x w^T, dy w and dy^T x, with no transposes. */
const blasLinearOp = customOp((x: tf.Tensor, w: tf.Tensor) => {
  const [outDim, inDim] = w.shape as [number, number];
  const x2 = x.reshape([-1, inDim]) as tf.Tensor2D;
  return {
    value: tf.matMul(x2, w as tf.Tensor2D, false, true).reshape([...x.shape.slice(0, -1), outDim]),
    save: [x2, w],
    gradFunc: (dy, saved) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      const dy2 = dy.reshape([-1, outDim]) as tf.Tensor2D;
      return [tf.matMul(dy2, ws).reshape(x.shape), tf.matMul(dy2, xs, true, false)];
    },
  };
});

function blasFrozenLinear(x: tf.Tensor, w: tf.Tensor): tf.Tensor {
  const [outDim, inDim] = w.shape as [number, number];
  const op = customOp((xi: tf.Tensor) => ({
    value: tf.matMul(xi.reshape([-1, inDim]) as tf.Tensor2D, w as tf.Tensor2D, false, true).reshape([...xi.shape.slice(0, -1), outDim]),
    gradFunc: (dy) => [tf.matMul(dy.reshape([-1, outDim]) as tf.Tensor2D, w as tf.Tensor2D).reshape(xi.shape)],
  }));
  return op(x);
}

/** (w @ x2^T)^T: [N, out]. */
function forwardProduct(x2: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  return tf.matMul(w, x2.transpose()).transpose();
}

/** Elements of w transposed at a time in inputGrad (16 MB of float32). */
const TRANSPOSE_CHUNK = 1 << 22;

/** dy @ w for dyT = dy^T [out, N] and w [out, in], as (sum over row chunks c of w[c]^T @ dyT[c])^T. */
function inputGrad(dyT: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const [outDim, inDim] = w.shape;
    const rows = Math.max(1, Math.floor(TRANSPOSE_CHUNK / inDim));
    if (rows >= outDim) return tf.matMul(w.transpose(), dyT).transpose();
    // dyT's row blocks are the chunks' second operands.
    let acc: tf.Tensor2D | null = null;
    for (let r0 = 0; r0 < outDim; r0 += rows) {
      const c = Math.min(rows, outDim - r0);
      // One tidy per chunk: the chunk's copies are freed before the next one is made.
      const next: tf.Tensor2D = tf.tidy(() => {
        const part = tf.matMul(w.slice([r0, 0], [c, inDim]).transpose(), dyT.slice([r0, 0], [c, -1])); // [in, N]
        return (acc ? acc.add(part) : part) as tf.Tensor2D;
      });
      acc?.dispose();
      acc = next;
    }
    return acc!.transpose();
  });
}

const linearOp = customOp((x: tf.Tensor, w: tf.Tensor) => {
  const [outDim, inDim] = w.shape as [number, number];
  const x2 = x.reshape([-1, inDim]) as tf.Tensor2D;
  return {
    value: forwardProduct(x2, w as tf.Tensor2D).reshape([...x.shape.slice(0, -1), outDim]),
    save: [x2, w],
    gradFunc: (dy, saved) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      const dyT = dy.reshape([-1, outDim]).transpose() as tf.Tensor2D; // [out, N], shared by both products
      const dw = tf.matMul(dyT, xs); // dy^T @ x: [out, in]
      return [inputGrad(dyT, ws).reshape(x.shape), dw];
    },
  };
});

/** The same product with w closed over: tfjs gives closure-captured tensors no gradient. */
function frozenLinear(x: tf.Tensor, w: tf.Tensor): tf.Tensor {
  const [outDim, inDim] = w.shape as [number, number];
  const op = customOp((xi: tf.Tensor) => {
    const x2 = xi.reshape([-1, inDim]) as tf.Tensor2D;
    return {
      value: forwardProduct(x2, w as tf.Tensor2D).reshape([...xi.shape.slice(0, -1), outDim]),
      gradFunc: (dy) => [tf.tidy(() => inputGrad(dy.reshape([-1, outDim]).transpose() as tf.Tensor2D, w as tf.Tensor2D).reshape(xi.shape))],
    };
  });
  return op(x);
}

/** SwiGLU gating: silu(gate) * up, the inside of Qwen3's MLP down(silu(gate(x)) * up(x)). */
export function swiglu(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  return tf.tidy(() => gate.mul(tf.sigmoid(gate)).mul(up));
}

/**
 * Rotary tables for integer positions [B, T]: cos and sin [B, 1, T, D] with
 * inv_freq = theta^(-2i/D) and emb = cat(freqs, freqs) (the half-split convention of Qwen/Llama).
 */
export function ropeTables(positions: tf.Tensor2D, headDim: number, theta: number): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
  return tf.tidy(() => {
    const half = headDim / 2;
    const invFreq = tf.tensor1d(Float32Array.from({ length: half }, (_, i) => 1 / theta ** ((2 * i) / headDim)));
    const freqs = positions.toFloat().expandDims(-1).mul(invFreq); // [B, T, D/2]
    const emb = tf.concat([freqs, freqs], -1).expandDims(1) as tf.Tensor4D; // [B, 1, T, D]
    return { cos: tf.cos(emb), sin: tf.sin(emb) };
  });
}

/** x * cos + rotate_half(x) * sin, with rotate_half(x) = cat(-x2, x1) over the last axis. */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const half = x.shape[3] / 2;
    const [x1, x2] = tf.split(x, [half, half], 3);
    const rotated = tf.concat([x2.neg(), x1], 3);
    return x.mul(cos).add(rotated.mul(sin)) as tf.Tensor4D;
  });
}
