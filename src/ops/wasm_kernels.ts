// Kernels the training path needs that @tensorflow/tfjs-backend-wasm lacks or does badly.
//
// tfjs has no per-kernel fallback: when a kernel is missing on the active backend the op throws.
// - UnsortedSegmentSum is missing; the gradient of `tf.gather` (embedding lookups) calls it.
//   wasm tensors live in the module's heap, so a kernel written in JavaScript reads and writes
//   that memory directly, with no copies.
// - Identity copies its input on wasm. The autodiff tape clones every tensor a gradient needs
//   (saveTensorsForBackwardMode), so each training step copied every weight it touched: for a
//   0.6B model, gigabytes per step. Tensors are immutable (a variable's assign swaps its data,
//   never writes into it), so Identity can share the data, as the cpu backend and wasm's own
//   Reshape already do.
// - Slice reads its whole input out of the heap (readSync copies it) before taking the slice: a
//   16 MB row block of a 600 MB embedding cost 300 ms. Ours reads through a view of the heap.
//   SplitV calls tfjs' own Slice directly, so each split (RoPE's halves) copied its whole input
//   to the host too (0.1-0.6 s per 0.6B training step, profiled): ours splits through our Slice.
// - Transpose takes 4-9 ns per element for weight-sized matrices (a linear layer's backward
//   transposes its weight each step). Ours copies those in 16 x 16 tiles (1.6-2.9 ns).
// - RoPE (both ways) and RMSNorm's backward as one kernel each (fused_kernels.ts) in place of
//   chains of 5-12 elementwise kernels.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm'; // registers the 'wasm' backend
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { registerFusedKernels } from './fused_kernels.js';

/** The kernels this module adds to the wasm backend (names as tfjs spells them). */
export const WASM_EXTRA_KERNELS = ['UnsortedSegmentSum', 'Identity', 'Slice', 'SplitV', 'Transpose'] as const;

interface SegmentSumInputs extends tf.NamedTensorInfoMap {
  x: tf.TensorInfo;
  segmentIds: tf.TensorInfo;
}

/**
 * out[s, ...] = sum over i with segmentIds[i] == s of x[i, ...]; ids outside [0, numSegments)
 * contribute nothing (TensorFlow drops negative ids the same way).
 */
function unsortedSegmentSum(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { x, segmentIds } = args.inputs as SegmentSumInputs;
  const backend = args.backend as BackendWasm;
  const numSegments = Number(args.attrs?.numSegments);
  // segmentIds covers the leading dims of x; each id addresses one inner block.
  const inner = tf.util.sizeFromShape(x.shape.slice(segmentIds.shape.length));
  const out = backend.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], x.dtype);
  // Views into the heap are taken after makeOutput: an allocation may grow (and move) the heap.
  const outVals = backend.typedArrayFromHeap(out) as Float32Array | Int32Array;
  const xVals = backend.typedArrayFromHeap(x) as Float32Array | Int32Array;
  const ids = backend.typedArrayFromHeap(segmentIds) as Int32Array;
  outVals.fill(0);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const src = i * inner;
    const dst = s * inner;
    for (let j = 0; j < inner; j++) outVals[dst + j] += xVals[src + j];
  }
  return out;
}

/** Identity without a copy: the output shares the input's data (reference counted). */
function sharedIdentity(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  (args.backend as BackendWasm).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** Slice through heap views: contiguous runs of the innermost sliced axis are copied whole. */
function heapSlice(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }, fallback: tf.KernelFunc): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  if (x.dtype === 'string') return fallback(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  const backend = args.backend as BackendWasm;
  const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, args.attrs!.begin as number[], args.attrs!.size as number[]);
  const out = backend.makeOutput(size, x.dtype);
  const src = backend.typedArrayFromHeap(x); // views taken after makeOutput (the heap may move)
  const dst = backend.typedArrayFromHeap(out);
  const rank = x.shape.length;
  if (rank === 0 || dst.length === 0) {
    if (dst.length) dst[0] = src[0];
    return out;
  }
  const strides = tf.util.computeStrides(x.shape);
  // Merge trailing axes that are taken whole into one contiguous run.
  let inner = rank - 1;
  let run = size[inner];
  while (inner > 0 && size[inner] === x.shape[inner] && begin[inner] === 0) {
    inner--;
    run *= size[inner];
  }
  const outer = size.slice(0, inner);
  const idx = new Array<number>(inner).fill(0);
  for (let o = 0; o < dst.length; o += run) {
    let offset = begin[inner] * (inner < rank - 1 ? strides[inner] : 1);
    for (let d = 0; d < inner; d++) offset += (begin[d] + idx[d]) * strides[d];
    dst.set(src.subarray(offset, offset + run), o);
    for (let d = inner - 1; d >= 0; d--) {
      if (++idx[d] < outer[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** tf.split's kernel: each piece a heapSlice along the axis. */
function heapSplit(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }, sliceFallback: tf.KernelFunc): tf.TensorInfo[] {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const axis = tf.util.parseAxisParam(args.attrs!.axis as number, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, args.attrs!.numOrSizeSplits as number | number[], axis);
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((s) => {
    const size = [...x.shape];
    size[axis] = s;
    const piece = heapSlice({ inputs: { x }, backend: args.backend, attrs: { begin: [...begin], size } }, sliceFallback);
    begin[axis] += s;
    return piece;
  });
}

/**
 * The same permutation on fewer axes: size-1 axes dropped, and input axes a, a+1 that stay
 * neighbours in the output merged into one (e.g. [B, T, n, D] by [0, 2, 1, 3] with B = 1 is
 * [T, n, D] by [1, 0, 2]).
 */
export function reducePermutation(shape: readonly number[], perm: readonly number[]): { shape: number[]; perm: number[] } {
  const kept = shape.map((_, i) => i).filter((i) => shape[i] !== 1);
  let sh = kept.map((i) => shape[i]);
  let pm = perm.filter((a) => shape[a] !== 1).map((a) => kept.indexOf(a));
  for (let j = 0; j + 1 < pm.length; ) {
    const a = pm[j];
    if (pm[j + 1] !== a + 1) {
      j++;
      continue;
    }
    sh = [...sh.slice(0, a), sh[a] * sh[a + 1], ...sh.slice(a + 2)];
    pm = pm.filter((_, k) => k !== j + 1).map((v) => (v > a ? v - 1 : v));
  }
  return { shape: sh, perm: pm };
}

// One element type only: the copy loops stay monomorphic (V8 runs loops over mixed typed-array
// kinds several times slower). 4-byte values are moved as int32 bits, which copies them exactly.
type Heap = Int32Array;
const TILE = 16;

/** dst[c, r] = src[r, c] for an R x C matrix at offset `at` of both arrays, in TILE x TILE tiles. */
function transpose2d(src: Heap, dst: Heap, R: number, C: number, at: number): void {
  for (let r0 = 0; r0 < R; r0 += TILE) {
    const r1 = Math.min(R, r0 + TILE);
    for (let c0 = 0; c0 < C; c0 += TILE) {
      const c1 = Math.min(C, c0 + TILE);
      for (let r = r0; r < r1; r++) {
        const row = at + r * C;
        for (let c = c0; c < c1; c++) dst[at + c * R + r] = src[row + c];
      }
    }
  }
}

/**
 * Both sides of a matrix transpose (or a batch of them) within these bounds go through tiles here;
 * tfjs' kernel is faster outside them (measured: [151,936, 64] 0.55 ns per element against 2.4,
 * head swaps [1, T, n, D] -> [1, n, T, D] 0.17 against 0.45), and slower inside ([3072, 1024]
 * 7.2 ns against 2.9, [512, 1024] 4.2 against 1.6).
 */
const TILED_MIN = 128;
const TILED_MAX = 16384;

/** Transpose through heap views for weight- and activation-sized matrices; others go to tfjs' kernel. */
function heapTranspose(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }, fallback: tf.KernelFunc): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const perm = args.attrs!.perm as number[];
  const { shape: s, perm: p } = reducePermutation(x.shape, perm);
  const key = p.join(',');
  const [R, C] = key === '1,0' ? s : key === '0,2,1' ? s.slice(1) : [0, 0];
  const tiled = Math.min(R, C) >= TILED_MIN && Math.max(R, C) <= TILED_MAX && (x.dtype === 'float32' || x.dtype === 'int32');
  if (!tiled) return fallback(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  const backend = args.backend as BackendWasm;
  const out = backend.makeOutput(perm.map((a) => x.shape[a]), x.dtype);
  const bits = (a: ArrayBufferView & { length: number }) => new Int32Array(a.buffer, a.byteOffset, a.length);
  const src = bits(backend.typedArrayFromHeap(x)); // views taken after makeOutput (the heap may move)
  const dst = bits(backend.typedArrayFromHeap(out));
  const batch = key === '1,0' ? 1 : s[0];
  for (let b = 0; b < batch; b++) transpose2d(src, dst, R, C, b * R * C);
  return out;
}

/** The part of the emscripten module the heap guard touches. */
export interface WasmHeapModule {
  _malloc: (bytes: number) => number;
  asm?: { malloc?: (bytes: number) => number };
  HEAPU8: Uint8Array;
}

/**
 * Makes a failed tensor allocation an error. The wasm builds return 0 from malloc when the heap
 * cannot grow (4 GB at most) and tfjs uses 0 as the tensor's address: measured, further tensors
 * then overwrite each other (values silently wrong) and on the threaded build the process can stall.
 * Wraps the raw export (emscripten's `_malloc` stub replaces itself with it on first call, so a
 * wrapper around the stub would be dropped). Safe to call more than once.
 */
export function guardWasmHeap(mod: WasmHeapModule): void {
  const raw = mod.asm?.malloc;
  if (!raw || (mod._malloc as { guarded?: boolean }).guarded) return;
  const guarded = (bytes: number) => {
    const at = raw(bytes);
    if (at === 0 && bytes > 0) {
      const heap = (mod.HEAPU8.length / 2 ** 20).toFixed(0);
      throw new Error(
        `wasm heap exhausted: could not allocate ${(bytes / 2 ** 20).toFixed(1)} MB (heap ${heap} MB, 4096 MB at most). ` +
          'Shorten sequences or micro-batches, set model.gradientCheckpointing = true, or run on tfjs-node(-gpu).',
      );
    }
    return at;
  };
  mod._malloc = Object.assign(guarded, { guarded: true });
}

let registered = false;

/** Registers these kernels on the wasm backend; safe to call more than once. */
export function registerWasmKernels(): void {
  if (registered) return;
  registered = true;
  const have = new Set(tf.getKernelsForBackend('wasm').map((k) => k.kernelName));
  if (!have.has('UnsortedSegmentSum')) {
    tf.registerKernel({ kernelName: 'UnsortedSegmentSum', backendName: 'wasm', kernelFunc: unsortedSegmentSum });
  }
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({ kernelName: 'Identity', backendName: 'wasm', kernelFunc: sharedIdentity });
  // The fallbacks keep their setup hooks (tfjs binds wasm functions in them).
  const slice = tf.getKernel('Slice', 'wasm')!;
  tf.unregisterKernel('Slice', 'wasm');
  tf.registerKernel({ kernelName: 'Slice', backendName: 'wasm', setupFunc: slice.setupFunc, kernelFunc: (args) => heapSlice(args, slice.kernelFunc) });
  tf.unregisterKernel('SplitV', 'wasm');
  tf.registerKernel({ kernelName: 'SplitV', backendName: 'wasm', kernelFunc: (args) => heapSplit(args, slice.kernelFunc) });
  const transpose = tf.getKernel('Transpose', 'wasm')!;
  tf.unregisterKernel('Transpose', 'wasm');
  tf.registerKernel({ kernelName: 'Transpose', backendName: 'wasm', setupFunc: transpose.setupFunc, kernelFunc: (args) => heapTranspose(args, transpose.kernelFunc) });
  registerFusedKernels();
}
