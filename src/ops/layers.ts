// Decoder math with no state: RMSNorm, rotary embeddings, linear layers, SwiGLU. Weights are
// passed in as tensors (tf.customGrad gives closure-captured tensors no gradient). RMSNorm, SwiGLU
// and RoPE are custom ops with hand-written gradients (they keep less for the backward pass than
// autodiff does); RoPE both ways and RMSNorm's backward on short rows run as one kernel where the
// backend has the fused kernels (wasm, fused_kernels.ts), as tfjs ops elsewhere.
import * as tf from '@tensorflow/tfjs';
import { customOp } from './custom_grad.js';
import { hasFusedKernel, runFusedKernel } from './fused_kernels.js';
import { nativeGemm } from './native_gemm.js';

/**
 * RMSNorm over the last axis, for x [..., D] and weight [D]: y = x * r * weight with
 * r = rsqrt(mean(x^2, -1) + eps). The backward pass keeps x and r ([..., 1]) only.
 */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  const D = x.shape[x.rank - 1];
  if (weight.rank !== 1 || weight.shape[0] !== D) throw new Error(`rmsNorm: weight has shape [${weight.shape}], expected [${D}] for x [${x.shape}]`);
  const op = customOp((xi: tf.Tensor, w: tf.Tensor) => {
    const [y, r] = rmsNormComposite(xi, w, eps);
    return {
      value: y,
      save: [xi, r, w],
      gradFunc: (dy, [xs, rs, ws]) =>
        D <= FUSED_RMSNORM_GRAD_MAX_D && hasFusedKernel('PromedicalRmsNormGrad', dy, xs, ws)
          ? runFusedKernel('PromedicalRmsNormGrad', { dy, x: xs, r: rs, weight: ws })
          : rmsNormGradComposite(dy, xs, rs, ws),
    };
  });
  return op(x, weight);
}

/** Rows up to this long take the one-pass backward kernel (faster there; fused_kernels.ts). */
const FUSED_RMSNORM_GRAD_MAX_D = 256;

/** y and r of rmsNorm as tfjs ops. */
function rmsNormComposite(x: tf.Tensor, w: tf.Tensor, eps: number): [tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const r = tf.rsqrt(x.square().mean(-1, true).add(eps));
    return [x.mul(r).mul(w), r];
  });
}

/**
 * d/dx of x_j r w_j, r = (mean(x^2) + eps)^(-1/2), with dr/dx_j = -r^3 x_j / D:
 *   dx = r (g - x r^2 mean(g x, -1)), g = dy w;   dw = sum over all leading axes of dy x r.
 */
function rmsNormGradComposite(dy: tf.Tensor, x: tf.Tensor, r: tf.Tensor, w: tf.Tensor): [tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const g = dy.mul(w);
    const dx = r.mul(g.sub(x.mul(r.square()).mul(g.mul(x).mean(-1, true))));
    const dw = dy.mul(x).mul(r).reshape([-1, w.shape[0]]).sum(0);
    return [dx, dw];
  });
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

/** SwiGLU gating: silu(gate) * up, the inside of Qwen3's MLP down(silu(gate(x)) * up(x)); gate
 * and up of one shape. */
export function swiglu(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  if (!tf.util.arraysEqual(gate.shape, up.shape)) throw new Error(`swiglu: gate [${gate.shape}] and up [${up.shape}] must have the same shape`);
  return swigluOp(gate, up);
}

/** out = gate s up, s = sigmoid(gate); ds/dgate = s (1 - s), so
 *   d_gate = dy up s (1 + gate (1 - s)),   d_up = dy gate s.
 * tfjs ops on every backend (on wasm they beat a fused JavaScript loop, see fused_kernels.ts). */
const swigluOp = customOp((gate: tf.Tensor, up: tf.Tensor) => {
  const s = tf.sigmoid(gate);
  return {
    value: gate.mul(s).mul(up),
    save: [gate, up, s],
    gradFunc: (dy, [g, u, sg]) =>
      tf.tidy(() => {
        const dyS = dy.mul(sg);
        return [dyS.mul(u).mul(g.mul(tf.sub(1, sg)).add(1)), dyS.mul(g)];
      }),
  };
});

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

/**
 * x * cos + rotate_half(x) * sin, with rotate_half(x) = cat(-x2, x1) over the last axis, for x
 * [B, n, T, D] and cos, sin [B, 1, T, D]. cos and sin get no gradient (they come from integer
 * positions); rotate_half is linear, so dx = dy * cos + rotate_half^T(dy * sin) with
 * rotate_half^T(z) = cat(z2, -z1).
 */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
  const op = customOp((xi: tf.Tensor4D) => ({
    value: rotate(xi, cos, sin, false),
    save: [cos, sin], // the tables may be freed before the backward pass; saved copies are kept
    gradFunc: (dy, [c, s]) => [rotate(dy, c as tf.Tensor4D, s as tf.Tensor4D, true)],
  }));
  return op(x);
}

/** x * cos + rotate_half(x) * sin, or with `transposed` x * cos + rotate_half^T(x * sin). */
function rotate(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D, transposed: boolean): tf.Tensor4D {
  if (hasFusedKernel('PromedicalRope', x, cos, sin) && ropeTablesFit(x, cos) && ropeTablesFit(x, sin)) {
    return runFusedKernel('PromedicalRope', { x, cos, sin }, { transposed })[0] as tf.Tensor4D;
  }
  return tf.tidy(() => {
    const half = x.shape[3] / 2;
    if (transposed) {
      const [z1, z2] = tf.split(x.mul(sin), [half, half], 3);
      return x.mul(cos).add(tf.concat([z2, z1.neg()], 3)) as tf.Tensor4D;
    }
    const [x1, x2] = tf.split(x, [half, half], 3);
    return x.mul(cos).add(tf.concat([x2.neg(), x1], 3).mul(sin)) as tf.Tensor4D;
  });
}

/** Whether a table has the [B or 1, 1, T, D] shape that the fused kernel reads for x [B, n, T, D]. */
function ropeTablesFit(x: tf.Tensor4D, table: tf.Tensor4D): boolean {
  const [B, , T, D] = x.shape;
  const [b, one, t, d] = table.shape;
  return (b === B || b === 1) && one === 1 && t === T && d === D && D % 2 === 0;
}
