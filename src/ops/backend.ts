// Backend selection: CUDA through tfjs-node-gpu where it can run, else the best CPU backend here.
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { loadNativeBlas, useNativeGemm } from './native_gemm.js';
import { guardWasmHeap, registerWasmKernels, type WasmHeapModule } from './wasm_kernels.js';
import { prepareWasmThreads } from './wasm_threads.js';

export type BackendPreference = 'auto' | 'tensorflow' | 'wasm' | 'cpu';

export interface BackendInfo {
  /** tfjs backend name: 'tensorflow', 'wasm' or 'cpu'. */
  name: string;
  /** What runs the math, e.g. 'cuda', 'cpu (libtensorflow)', 'cpu (wasm, SIMD)'. */
  device: string;
  /** One line per backend that was tried and skipped, saying why; then the choice. */
  notes: string[];
  /** What runs wasm's large matrix products: the native BLAS's name, or 'xnnpack'. Absent on
   * other backends. */
  gemm?: string;
}

export type GemmPreference = 'auto' | 'native' | 'xnnpack';

export interface InitBackendOptions {
  /** Where the notes go; default one line each on stderr. Pass `() => {}` to silence. */
  log?: (line: string) => void;
  /** Threads of the wasm backend, main thread included: a number, or 'auto' (default) for the
   * machine's cores (at most 8, XNNPACK's pool). PROMEDICAL_WASM_THREADS overrides. Threads pay off
   * on otherwise idle cores only: when other jobs share the cores, every op waits for the slowest
   * thread (many small ops then run several times slower), so give such runs 1. */
  wasmThreads?: number | 'auto';
  /** wasm's large matrix products: 'auto' (default) on the machine's BLAS through koffi where one
   * loads (OpenBLAS: `apt-get install libopenblas0-pthread`), else XNNPACK; 'native' fails
   * without one; 'xnnpack' never uses it. PROMEDICAL_GEMM overrides; PROMEDICAL_BLAS names the
   * library file. */
  gemm?: GemmPreference;
}

const GEMMS: readonly GemmPreference[] = ['auto', 'native', 'xnnpack'];

const PREFERENCES: readonly BackendPreference[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

/** A candidate either becomes the backend (returns its device) or says why not (throws). */
type Attempt = () => Promise<string>;

/**
 * Picks and initialises the tfjs backend.
 *
 * 'auto' tries, in order: tfjs-node-gpu with a visible CUDA device, tfjs-node (libtensorflow on
 * the CPU, which is also what tfjs-node-gpu gives without a GPU), wasm with SIMD, and the pure-JS
 * cpu backend. An explicit choice ('tensorflow', 'wasm', 'cpu') fails loudly instead of falling
 * through. The environment variable PROMEDICAL_BACKEND overrides `prefer`.
 */
export async function initBackend(
  prefer: BackendPreference = 'auto',
  opts: InitBackendOptions = {},
): Promise<BackendInfo> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`[promedical] ${line}\n`));
  if (!PREFERENCES.includes(prefer)) {
    throw new Error(`initBackend: unknown backend "${String(prefer)}"; expected one of ${PREFERENCES.join(', ')} (auto picks CUDA through tfjs-node-gpu when it can)`);
  }
  const fromEnv = process.env.PROMEDICAL_BACKEND?.trim();
  if (fromEnv) {
    if (!PREFERENCES.includes(fromEnv as BackendPreference)) {
      throw new Error(`PROMEDICAL_BACKEND=${fromEnv} is not one of ${PREFERENCES.join(', ')}`);
    }
    prefer = fromEnv as BackendPreference;
  }
  const threadsEnv = process.env.PROMEDICAL_WASM_THREADS?.trim();
  const wanted = threadsEnv || (opts.wasmThreads ?? 'auto');
  const threads = wanted === 'auto' ? Math.min(8, os.availableParallelism()) : Number(wanted);
  if (!Number.isInteger(threads) || threads < 1 || threads > 8) {
    throw new Error(`${threadsEnv ? `PROMEDICAL_WASM_THREADS=${threadsEnv}` : `wasmThreads ${opts.wasmThreads}`}: expected 'auto' or a whole number from 1 to 8`);
  }
  const gemmEnv = process.env.PROMEDICAL_GEMM?.trim();
  const gemm = (gemmEnv || opts.gemm || 'auto') as GemmPreference;
  if (!GEMMS.includes(gemm)) throw new Error(`${gemmEnv ? `PROMEDICAL_GEMM=${gemmEnv}` : `gemm ${String(opts.gemm)}`}: expected one of ${GEMMS.join(', ')}`);
  const notes: string[] = [];
  if (fromEnv) notes.push(`PROMEDICAL_BACKEND=${fromEnv} overrides the requested backend`);
  const wasm = () => tryWasm(threads, gemm, notes);

  const order: [string, Attempt][] =
    prefer === 'auto'
      ? [
          ['tfjs-node-gpu', () => tryTensorflow('@tensorflow/tfjs-node-gpu', true)],
          ['tfjs-node', () => tryTensorflow('@tensorflow/tfjs-node', false)],
          ['wasm', wasm],
          ['cpu', tryCpu],
        ]
      : prefer === 'tensorflow'
        ? [
            ['tfjs-node-gpu', () => tryTensorflow('@tensorflow/tfjs-node-gpu', false)],
            ['tfjs-node', () => tryTensorflow('@tensorflow/tfjs-node', false)],
          ]
        : prefer === 'wasm'
          ? [['wasm', wasm]]
          : [['cpu', tryCpu]];

  for (const [label, attempt] of order) {
    try {
      const device = await attempt();
      const name = tf.getBackend();
      const info: BackendInfo = { name, device, notes, ...(name === 'wasm' ? { gemm: wasmGemm } : {}) };
      chosen = info;
      notes.push(`backend: ${info.name} on ${device}`);
      for (const line of notes) log(line);
      return info;
    } catch (err) {
      notes.push(`skipped ${label}: ${firstLine(err)}`);
    }
  }
  for (const line of notes) log(line);
  throw new Error(`no usable backend for '${prefer}':\n  ${notes.join('\n  ')}`);
}

let chosen: BackendInfo | null = null;
let pending: Promise<BackendInfo> | null = null;
/** Set while the only backend is the one ensureBackendSync fell back to. */
let syncFallback = false;

/** No backend has been set up yet, by initBackend or by tf.setBackend (tfjs' own default is not
 * usable here: wasm is registered first and needs an asynchronous start). */
function noBackendYet(): boolean {
  return chosen === null && (syncFallback || (tf.engine() as unknown as { backendName?: string | null }).backendName == null);
}

/**
 * What functions that need a backend call first: nothing when one is set up already (by
 * `initBackend` or `tf.setBackend`), else `initBackend('auto')` once, with its usual notes.
 */
export async function ensureBackend(): Promise<void> {
  if (!noBackendYet()) return;
  pending ??= initBackend('auto').finally(() => (pending = null));
  await pending;
}

/**
 * The synchronous paths (a tensor read from a safetensors file) cannot wait for wasm to start:
 * with no backend set up yet they use the cpu backend, say so once, and `initBackend` (or any
 * asynchronous loader) moves the tensors on later.
 */
export function ensureBackendSync(): void {
  if (syncFallback || pending || !noBackendYet()) return;
  syncFallback = true;
  process.stderr.write("[promedical] no backend set up yet: tensors start on the cpu backend; `await initBackend()` (or any async loader) picks the fast one\n");
  void tf.setBackend('cpu');
}

/**
 * Loads a libtensorflow binding. With `needGpu`, a binding that found no CUDA device is not
 * taken (auto mode then prefers tfjs-node under its own name, which behaves the same).
 */
async function tryTensorflow(pkg: string, needGpu: boolean): Promise<string> {
  try {
    await import(pkg);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new Error(`${pkg} is not installed (it is optional; see the README's GPU section)`);
    }
    throw new Error(`${pkg} is installed but failed to load: ${firstLine(err)}`);
  }
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but its backend did not initialise`);
  const gpu = Boolean((tf.backend() as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice);
  if (needGpu && !gpu) throw new Error(`${pkg} loaded but sees no CUDA device`);
  return gpu ? 'cuda' : 'cpu (libtensorflow)';
}

/** What tryWasm put under BatchMatMul. */
let wasmGemm = 'xnnpack';

async function tryWasm(threads: number, gemm: GemmPreference, notes: string[]): Promise<string> {
  registerWasmKernels();
  const restore = threads > 1 ? prepareWasmThreads(threads) : () => {};
  try {
    if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not initialise');
    await tf.ready();
  } finally {
    restore();
  }
  guardWasmHeap((tf.backend() as unknown as { wasm: WasmHeapModule }).wasm);
  const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
  const n = threads > 1 ? getThreadsCount() : 1;
  const blas = gemm === 'xnnpack' ? null : loadNativeBlas(n);
  if (blas && 'reason' in blas) {
    if (gemm === 'native') throw new Error(`gemm 'native': ${blas.reason}`);
    notes.push(`matrix products on XNNPACK: ${blas.reason} (apt-get install libopenblas0-pthread for the native GEMM)`);
  }
  const native = blas && !('reason' in blas) ? blas : null;
  useNativeGemm(native);
  wasmGemm = native ? native.name : 'xnnpack';
  return `cpu (wasm${simd ? ', SIMD' : ', no SIMD'}${n > 1 ? `, ${n} threads` : ''}${native ? `, GEMM on ${native.name.split(' ').slice(0, 2).join(' ')} with ${native.threads} thread${native.threads > 1 ? 's' : ''}` : ''})`;
}

async function tryCpu(): Promise<string> {
  if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend did not initialise');
  await tf.ready();
  return 'cpu (JavaScript)';
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0]!.trim();
}
