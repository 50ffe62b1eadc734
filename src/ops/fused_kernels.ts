// One-pass wasm kernels for RMSNorm's backward pass and for RoPE (both ways). As tfjs ops (and
// their autodiff) each is a chain of 5-12 kernels, each reading and writing the whole activation;
// these read their inputs once and write their outputs once. They are JavaScript, so they win only
// where they replace many kernels on rows short enough that per-kernel costs dominate; measured
// (bench/fused_ops.ts, one op forward + backward, and the same alone):
// - RMSNorm's backward: faster than the tfjs ops for rows of up to a few hundred values ([2048, 64]
//   0.9 against 1.4 ms, the 0.6B q/k norms [8192, 128] 7.5 against 11.3), about even at [512, 1024]
//   (3.8 against 3.6), slower at 3072; layers.ts uses it for D <= 256. Its forward (one reduction and two products) was 2-4x
//   slower in JavaScript than as tfjs ops at every size, so it has no kernel.
// - RoPE: 3-6x faster than split / neg / concat / 2 mul / add at the tiny and RM shapes, about even
//   at 0.6B's [1, 16, 512, 128].
//
// SwiGLU has none: a JavaScript loop runs at 3-7 ns per element, XNNPACK's elementwise kernels at
// 0.3-1.1, so its 3 forward and 7 backward kernels beat one JavaScript pass (measured at
// [512, 3072]: backward 9-10 ms against 4.4-5.3, forward 7.9 ns per element with a table-based exp
// and 17 with Math.exp, against 1.7). Fusion pays where it removes a reduction and its broadcasts
// (RMSNorm) or splits and concats (RoPE).
//
// Written in JavaScript over views of the wasm heap (as in wasm_kernels.ts): the views are taken
// after makeOutput, since an allocation may grow (and move) the heap. Row sums (RMSNorm's mean of
// squares, its gradient's mean(g x) and the weight gradient) accumulate in float64. src/ops/layers.ts
// runs these where the active backend has them and the same math as tfjs ops elsewhere.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** The kernels this module adds to the wasm backend. */
export const FUSED_KERNELS = ['PromedicalRmsNormGrad', 'PromedicalRope'] as const;
export type FusedKernelName = (typeof FUSED_KERNELS)[number];

interface KernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}

/** Whether `name` runs on the active backend for these (float32) tensors. */
export function hasFusedKernel(name: FusedKernelName, ...tensors: tf.Tensor[]): boolean {
  return tensors.every((t) => t.dtype === 'float32') && tf.getKernel(name, tf.getBackend()) != null;
}

/** Runs a fused kernel; its outputs as a list (one or two tensors). */
export function runFusedKernel(name: FusedKernelName, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap = {}): tf.Tensor[] {
  const out = tf.engine().runKernel<tf.Tensor | tf.Tensor[]>(name, inputs, attrs);
  return Array.isArray(out) ? out : [out];
}

const view = (backend: BackendWasm, t: tf.TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
const lastDim = (t: tf.TensorInfo) => t.shape[t.shape.length - 1];

/**
 * RMSNorm's gradient from dy, x, r and w: dx = r (g - x r^2 mean(g x, -1)) with g = dy w, and
 * dw = the sum over rows of dy x r.
 */
function rmsNormGrad(args: KernelArgs): tf.TensorInfo[] {
  const { dy, x, r, weight } = args.inputs as { dy: tf.TensorInfo; x: tf.TensorInfo; r: tf.TensorInfo; weight: tf.TensorInfo };
  const backend = args.backend as BackendWasm;
  const D = lastDim(x);
  const dx = backend.makeOutput(x.shape, 'float32');
  const dw = backend.makeOutput(weight.shape, 'float32');
  const dyv = view(backend, dy);
  const xv = view(backend, x);
  const rv = view(backend, r);
  const wv = view(backend, weight);
  const dxv = view(backend, dx);
  const dwSum = new Float64Array(D);
  const rows = D === 0 ? 0 : xv.length / D;
  for (let row = 0, at = 0; row < rows; row++, at += D) {
    const inv = rv[row];
    let gx = 0;
    for (let j = 0; j < D; j++) gx += dyv[at + j] * wv[j] * xv[at + j];
    const c = (inv * inv * gx) / D;
    for (let j = 0; j < D; j++) {
      const d = dyv[at + j];
      const v = xv[at + j];
      dxv[at + j] = inv * (d * wv[j] - v * c);
      dwSum[j] += d * v * inv;
    }
  }
  view(backend, dw).set(dwSum);
  return [dx, dw];
}

/**
 * Rotary embedding of x [B, n, T, D] by tables cos, sin [B or 1, 1, T, D], over halves
 * x = (x1, x2) of the last axis: y = x cos + cat(-x2, x1) sin, i.e.
 *   y1 = x1 c1 - x2 s1,  y2 = x2 c2 + x1 s2.
 * With attr `transposed` it applies the transpose of that map (the gradient, x being dy):
 *   y1 = x1 c1 + x2 s2,  y2 = x2 c2 - x1 s1.
 */
function rope(args: KernelArgs): tf.TensorInfo {
  const { x, cos, sin } = args.inputs as { x: tf.TensorInfo; cos: tf.TensorInfo; sin: tf.TensorInfo };
  const backend = args.backend as BackendWasm;
  const transposed = Boolean(args.attrs!.transposed);
  const [B, n, T, D] = x.shape;
  const half = D / 2;
  const out = backend.makeOutput(x.shape, 'float32');
  const xv = view(backend, x);
  const cv = view(backend, cos);
  const sv = view(backend, sin);
  const ov = view(backend, out);
  const tableBatchStride = cos.shape[0] === 1 ? 0 : T * D;
  // The transpose swaps which half of sin each half of y reads, and its sign.
  const sinFirst = transposed ? half : 0;
  const sinSecond = transposed ? 0 : half;
  const sign = transposed ? -1 : 1;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < n; h++) {
      for (let t = 0; t < T; t++) {
        const at = ((b * n + h) * T + t) * D;
        const tab = b * tableBatchStride + t * D;
        for (let j = 0; j < half; j++) {
          const x1 = xv[at + j];
          const x2 = xv[at + half + j];
          ov[at + j] = x1 * cv[tab + j] - sign * x2 * sv[tab + sinFirst + j];
          ov[at + half + j] = x2 * cv[tab + half + j] + sign * x1 * sv[tab + sinSecond + j];
        }
      }
    }
  }
  return out;
}

const KERNEL_FUNCS: Record<FusedKernelName, (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[]> = {
  PromedicalRmsNormGrad: rmsNormGrad,
  PromedicalRope: rope,
};

/** Registers the fused kernels on the wasm backend; safe to call more than once. */
export function registerFusedKernels(): void {
  for (const kernelName of FUSED_KERNELS) {
    if (tf.getKernel(kernelName, 'wasm')) continue;
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: KERNEL_FUNCS[kernelName] as tf.KernelFunc });
  }
}
