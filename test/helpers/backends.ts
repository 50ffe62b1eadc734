// Test helpers: run the same computation on two tfjs backends and compare host values.
import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import { guardWasmHeap, registerWasmKernels, type WasmHeapModule } from '../../src/ops/wasm_kernels.js';

/** Switches the active backend (wasm gets our extra kernels first). */
export async function useBackend(name: 'wasm' | 'cpu'): Promise<void> {
  if (name === 'wasm') registerWasmKernels();
  if (!(await tf.setBackend(name))) throw new Error(`backend ${name} did not initialise`);
  await tf.ready();
  if (name === 'wasm') guardWasmHeap((tf.backend() as unknown as { wasm: WasmHeapModule }).wasm); // as initBackend does
}

/** Runs `fn` on `backend` inside tidy and returns every output as a plain array. */
export async function runOn(backend: 'wasm' | 'cpu', fn: () => tf.Tensor[]): Promise<number[][]> {
  await useBackend(backend);
  const outs = tf.tidy(fn);
  const values = outs.map((t) => Array.from(t.dataSync()));
  tf.dispose(outs);
  return values;
}

/** Deterministic uniform values in [lo, hi). */
export function randomArray(n: number, seed: string, lo = -1, hi = 1): Float32Array {
  const rng = seedrandom(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * rng());
}

export function randomInts(n: number, seed: string, lo: number, hi: number): Int32Array {
  const rng = seedrandom(seed);
  return Int32Array.from({ length: n }, () => lo + Math.floor((hi - lo) * rng()));
}

/** max |a - b| over two equal-length arrays (Infinity when lengths differ). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
