// Decoder math with no state: RMSNorm, rotary embeddings, linear layers, SwiGLU. Weights are
// passed in as tensors (tf.customGrad gives closure-captured tensors no gradient).
import * as tf from '@tensorflow/tfjs';

/** RMSNorm over the last axis: x * rsqrt(mean(x^2) + eps) * weight. */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  return tf.tidy(() => x.mul(tf.rsqrt(x.square().mean(-1, true).add(eps))).mul(weight));
}

/**
 * x @ w for x [..., in] and w stored [in, out] (the transpose of PyTorch's nn.Linear weight).
 * The forward is a plain 2-D matMul, and the gradient transposes explicitly before its matMuls:
 * on wasm only non-transposed 2-D matMuls take the fast XNNPACK path (~10x faster).
 */
export function linear(x: tf.Tensor, w: tf.Tensor): tf.Tensor {
  return linearOp(x, w);
}

/** tf.customGrad for an op of two tensor inputs (its own typing takes a variadic union). */
function customGrad2(f: (a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[] }) {
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;
}

const linearOp = customGrad2((x, w, save) => {
  const [inDim, outDim] = w.shape as [number, number];
  const x2 = x.reshape([-1, inDim]) as tf.Tensor2D;
  save([x2, w]);
  const y = tf.matMul(x2, w as tf.Tensor2D).reshape([...x.shape.slice(0, -1), outDim]);
  return {
    value: y,
    gradFunc: (dy, saved) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      const dy2 = dy.reshape([-1, ws.shape[1]]) as tf.Tensor2D;
      const dx = tf.matMul(dy2, ws.transpose()).reshape(x.shape);
      const dw = tf.matMul(xs.transpose(), dy2);
      return [dx, dw];
    },
  };
});

/** x @ w^T for x [..., H] and w [V, H] (a tied LM head reading the embedding matrix). */
export function linearTransposed(x: tf.Tensor, w: tf.Tensor): tf.Tensor {
  return linearTOp(x, w);
}

const linearTOp = customGrad2((x, w, save) => {
  const [outDim, inDim] = w.shape as [number, number];
  const x2 = x.reshape([-1, inDim]) as tf.Tensor2D;
  save([x2, w]);
  const y = tf.matMul(x2, (w as tf.Tensor2D).transpose()).reshape([...x.shape.slice(0, -1), outDim]);
  return {
    value: y,
    gradFunc: (dy, saved) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      const dy2 = dy.reshape([-1, ws.shape[0]]) as tf.Tensor2D;
      const dx = tf.matMul(dy2, ws).reshape(x.shape);
      const dw = tf.matMul(dy2.transpose(), xs);
      return [dx, dw];
    },
  };
});

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
