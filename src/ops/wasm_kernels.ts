// Kernels the training path needs that @tensorflow/tfjs-backend-wasm does not ship.
//
// tfjs has no per-kernel fallback: when a kernel is missing on the active backend the op throws.
// The one that matters for training is UnsortedSegmentSum, which the gradient of `tf.gather`
// (embedding lookups, GQA head expansion) calls. wasm tensors live in the module's heap, so a
// kernel written in JavaScript reads and writes that memory directly, with no copies.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm'; // registers the 'wasm' backend
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** The kernels this module adds to the wasm backend (names as tfjs spells them). */
export const WASM_EXTRA_KERNELS = ['UnsortedSegmentSum'] as const;

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

let registered = false;

/** Registers the missing kernels on the wasm backend; safe to call more than once. */
export function registerWasmKernels(): void {
  if (registered) return;
  registered = true;
  const have = new Set(tf.getKernelsForBackend('wasm').map((k) => k.kernelName));
  if (!have.has('UnsortedSegmentSum')) {
    tf.registerKernel({ kernelName: 'UnsortedSegmentSum', backendName: 'wasm', kernelFunc: unsortedSegmentSum });
  }
}
