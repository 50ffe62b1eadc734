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
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm'; // registers the 'wasm' backend
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** The kernels this module adds to the wasm backend (names as tfjs spells them). */
export const WASM_EXTRA_KERNELS = ['UnsortedSegmentSum', 'Identity', 'Slice'] as const;

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
  const slice = tf.getKernel('Slice', 'wasm')!.kernelFunc;
  tf.unregisterKernel('Slice', 'wasm');
  tf.registerKernel({ kernelName: 'Slice', backendName: 'wasm', kernelFunc: (args) => heapSlice(args, slice) });
}
