// Multi-threaded wasm under Node. tfjs-backend-wasm 4.22 ships a threaded SIMD build (XNNPACK with
// a pthread pool) but never uses it in Node, for four reasons this file works around:
//  1. flags_wasm.js reports WASM_HAS_MULTITHREAD_SUPPORT = false whenever IS_NODE (tfjs #3830);
//  2. the pthread workers are created from blob: URLs, which Node's Worker does not accept;
//  3. each worker is told to load a Blob of the bundled factory instead of the standalone glue;
//  4. backend.cc caps the pool at emscripten_num_logical_cores() / 2 = os.cpus().length / 2, so a
//     2-core machine gets 1 thread whatever setThreadsCount asks.
// Relies on package internals (wasm-out/ file names, the 'load' message): tfjs is pinned to 4.22.
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { setThreadsCount } from '@tensorflow/tfjs-backend-wasm';

/**
 * Prepares the next wasm backend initialisation to run on `threads` threads (the main thread
 * included). Call before tf.setBackend('wasm'); call the returned function once it is ready.
 */
export function prepareWasmThreads(threads: number): () => void {
  const require = createRequire(import.meta.url);
  const dir = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'wasm-out');
  const { wasmWorkerContents } = require(path.join(dir, 'tfjs-backend-wasm-threaded-simd.worker.js')) as { wasmWorkerContents: string };
  const workerSource = wasmWorkerContents.replace(/\n/g, '\\n'); // as tfjs escapes it for its Blob
  const glue = path.join(dir, 'tfjs-backend-wasm-threaded-simd.js');

  class PoolWorker extends Worker {
    constructor(_url: unknown, opts?: WorkerOptions) {
      super(workerSource, { ...opts, eval: true });
    }
    override postMessage(message: unknown, transfer?: readonly import('node:worker_threads').TransferListItem[]): void {
      const m = message as { cmd?: string } | null;
      super.postMessage(m?.cmd === 'load' ? { ...m, urlOrBlob: glue } : message, transfer);
    }
    // Emscripten refs a worker while it runs a thread; XNNPACK's pool threads never finish, so a
    // ref would keep the process alive forever. The main thread joins them synchronously anyway.
    override ref(): void {}
  }
  // The glue assigns globalThis.Worker = worker_threads.Worker on every load: keep ours.
  Object.defineProperty(globalThis, 'Worker', { configurable: true, enumerable: false, get: () => PoolWorker, set: () => {} });
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  setThreadsCount(threads);
  const mutable = os as { cpus: typeof os.cpus };
  const cpus = mutable.cpus;
  const reported = cpus.call(os);
  while (reported.length < 2 * threads) reported.push(reported[0]);
  mutable.cpus = () => reported;
  return () => {
    mutable.cpus = cpus;
    delete (globalThis as { Worker?: unknown }).Worker;
  };
}
