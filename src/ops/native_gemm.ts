// Matrix products of the wasm backend on the machine's own BLAS (OpenBLAS, MKL, BLIS, Accelerate),
// called through koffi (a prebuilt FFI package) on the wasm heap itself: no copies in or out.
//
// Why: XNNPACK in wasm has 128-bit SIMD and no FMA; a native sgemm uses the CPU's AVX2 / AVX-512
// FMA units (measured on a 2-core Zen 4: see docs/backends-and-gpu.md). Everything else stays on
// XNNPACK. Where no BLAS or no koffi is found, nothing changes and one line says so.
//
// Safety of the zero-copy call: the sgemm runs synchronously on this thread, inside the kernel,
// after the output is allocated; the heap cannot grow (and move) while it runs, so the views stay
// valid. The wasm threads are idle then (a wasm kernel has returned before a JS kernel starts).
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** A CBLAS sgemm (row-major) and what it is. */
export interface NativeBlas {
  /** e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64". */
  name: string;
  /** The library file it came from. */
  library: string;
  /** The BLAS's own thread count. */
  threads: number;
  /** C[m, n] = op(A) op(B), op = transpose where asked; lda / ldb / ldc are row strides. */
  sgemm(transA: boolean, transB: boolean, m: number, n: number, k: number, a: Float32Array, lda: number, b: Float32Array, ldb: number, c: Float32Array, ldc: number): void;
}

/** Libraries tried in order, per platform, when PROMEDICAL_BLAS names none. Debian's generic
 * libblas.so.3 is left out: it may be the reference BLAS, slower than XNNPACK. */
const CANDIDATES: Partial<Record<NodeJS.Platform, string[]>> = {
  linux: ['libopenblas.so.0', 'libopenblas.so', 'libmkl_rt.so.2', 'libmkl_rt.so', 'libblis.so.4', 'libblis.so'],
  darwin: ['/System/Library/Frameworks/Accelerate.framework/Accelerate', 'libopenblas.dylib'],
  win32: ['libopenblas.dll', 'mkl_rt.2.dll'],
};

const ROW_MAJOR = 101;
const NO_TRANS = 111;
const TRANS = 112;

interface Koffi {
  load(path: string): { func(signature: string): (...args: unknown[]) => unknown };
}

/**
 * Loads a BLAS with `threads` threads: `library` (default: $PROMEDICAL_BLAS, else the usual
 * names) through koffi. Returns the reason instead when there is none.
 */
export function loadNativeBlas(threads: number, library = process.env.PROMEDICAL_BLAS?.trim() || undefined): NativeBlas | { reason: string } {
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
  } catch (err) {
    return { reason: `koffi is not installed (${firstLine(err)})` };
  }
  // OpenBLAS's idle threads spin for a while after each call; the wasm threads then compete with
  // them for the cores during the next (non-GEMM) kernels. Read when the library starts.
  process.env.OPENBLAS_THREAD_TIMEOUT ??= '4';
  const tried = library ? [library] : (CANDIDATES[process.platform] ?? []);
  const failures: string[] = [];
  for (const file of tried) {
    let lib: ReturnType<Koffi['load']>;
    try {
      lib = koffi.load(file);
    } catch (err) {
      failures.push(`${file}: ${firstLine(err)}`);
      continue;
    }
    let sgemm: (...args: unknown[]) => unknown;
    try {
      sgemm = lib.func('void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)');
    } catch (err) {
      failures.push(`${file}: no cblas_sgemm (${firstLine(err)})`);
      continue;
    }
    const optional = (signature: string) => {
      try {
        return lib.func(signature);
      } catch {
        return undefined;
      }
    };
    // Thread control and a name, where the library has them (OpenBLAS, MKL, BLIS).
    const setThreads = optional('void openblas_set_num_threads(int n)') ?? optional('void MKL_Set_Num_Threads(int n)') ?? optional('void bli_thread_set_num_threads(long n)');
    setThreads?.(threads);
    const getThreads = optional('int openblas_get_num_threads()') ?? optional('int MKL_Get_Max_Threads()');
    const config = optional('const char *openblas_get_config()');
    const name = (config?.() as string | undefined)?.trim() || file;
    return {
      name,
      library: file,
      threads: (getThreads?.() as number | undefined) ?? threads,
      sgemm: (transA, transB, m, n, k, a, lda, b, ldb, c, ldc) =>
        void sgemm(ROW_MAJOR, transA ? TRANS : NO_TRANS, transB ? TRANS : NO_TRANS, m, n, k, 1, a, lda, b, ldb, 0, c, ldc),
    };
  }
  return { reason: failures.length ? `no usable BLAS: ${failures.join('; ')}` : `no BLAS known for ${process.platform}` };
}

/** Products below this many multiply-adds stay on XNNPACK (a call's fixed cost is a few µs). */
export const NATIVE_MIN_MACS = 1 << 15;

let active: NativeBlas | null = null;

/** The BLAS the wasm backend's BatchMatMul runs on, or null (XNNPACK). */
export function nativeGemm(): NativeBlas | null {
  return active !== null && tf.getBackend() === 'wasm' ? active : null;
}

interface MatMulInputs extends tf.NamedTensorInfoMap {
  a: tf.TensorInfo;
  b: tf.TensorInfo;
}

/**
 * BatchMatMul on `blas`: a [..., M, K] (or [..., K, M] with transposeA) times b [..., K, N] (or
 * [..., N, K]); batch dims equal, or one side's all 1 (broadcast). Anything else, non-float32
 * and small products go to `fallback` (XNNPACK).
 */
function batchMatMul(blas: NativeBlas, minMacs: number, args: Parameters<tf.KernelFunc>[0], fallback: tf.KernelFunc): tf.TensorInfo {
  const { a, b } = args.inputs as MatMulInputs;
  const transposeA = Boolean(args.attrs?.transposeA);
  const transposeB = Boolean(args.attrs?.transposeB);
  const [ra, rb] = [a.shape.length, b.shape.length];
  const M = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const K = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const N = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  const kB = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  const batch = Math.max(batchA, batchB);
  const plain = a.dtype === 'float32' && b.dtype === 'float32' && K === kB && (batchA === batchB || batchA === 1 || batchB === 1);
  if (!plain || batch * M * N * K < minMacs) return fallback(args) as tf.TensorInfo;
  const outer = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const backend = args.backend as BackendWasm;
  const out = backend.makeOutput([...outer, M, N], 'float32');
  // Views after makeOutput: an allocation may grow (and move) the heap.
  const av = backend.typedArrayFromHeap(a) as Float32Array;
  const bv = backend.typedArrayFromHeap(b) as Float32Array;
  const cv = backend.typedArrayFromHeap(out) as Float32Array;
  if (cv.length === 0) return out;
  if (K === 0) {
    cv.fill(0); // an empty sum (the new output's memory holds anything)
    return out;
  }
  const lda = transposeA ? M : K;
  const ldb = transposeB ? K : N;
  for (let i = 0; i < batch; i++) {
    const ai = batchA === 1 ? 0 : i * M * K;
    const bi = batchB === 1 ? 0 : i * K * N;
    blas.sgemm(transposeA, transposeB, M, N, K, av.subarray(ai, ai + M * K), lda, bv.subarray(bi, bi + K * N), ldb, cv.subarray(i * M * N, (i + 1) * M * N), N);
  }
  return out;
}

/**
 * Runs the wasm backend's matrix products of at least `minMacs` multiply-adds (default
 * NATIVE_MIN_MACS) on `blas`; null: all on XNNPACK again. initBackend calls it.
 */
export function useNativeGemm(blas: NativeBlas | null, opts: { minMacs?: number } = {}): void {
  const minMacs = opts.minMacs ?? NATIVE_MIN_MACS;
  const current = tf.getKernel('BatchMatMul', 'wasm');
  if (!current) throw new Error('useNativeGemm: the wasm backend has no BatchMatMul kernel (is @tensorflow/tfjs-backend-wasm loaded?)');
  const original = (current as { original?: tf.KernelConfig }).original ?? current;
  tf.unregisterKernel('BatchMatMul', 'wasm');
  if (blas === null) {
    tf.registerKernel(original);
  } else {
    const kernel: tf.KernelConfig & { original?: tf.KernelConfig } = {
      kernelName: 'BatchMatMul',
      backendName: 'wasm',
      setupFunc: original.setupFunc,
      kernelFunc: (args) => batchMatMul(blas, minMacs, args, original.kernelFunc),
    };
    kernel.original = original;
    tf.registerKernel(kernel);
  }
  active = blas;
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0]!.trim();
}
