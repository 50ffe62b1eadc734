// Per-token log-probabilities of chosen ids from logits already computed, without a [N, V]
// one-hot or a full log-softmax copy. log p_t = z_t[y_t] - logsumexp(z_t) with z = logits /
// temperature (TRL's selective_log_softmax; the sampling temperature divides the logits first).
// The library's own causal-LM path does not come here: Qwen3ForCausalLM.targetLogProbs fuses the
// LM head with the log-softmax (lm_head.ts) and never materialises the logits.
import * as tf from '@tensorflow/tfjs';
import { customOp } from './custom_grad.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** Rows per chunk on the generic path: about 16M logits (64 MB) at a time. */
const CHUNK_ELEMENTS = 1 << 24;

export interface LogProbOptions {
  /** Divides the logits before the softmax (default 1). */
  temperature?: number;
  /** Rows per chunk (default: about 16M logits per chunk). Smaller chunks use less memory. */
  chunkRows?: number;
}

const rowsPerChunk = (V: number, opts: LogProbOptions) => opts.chunkRows ?? Math.max(1, Math.floor(CHUNK_ELEMENTS / V));

/**
 * log softmax(logits / temperature)[ids] for logits [..., V] and ids [...] (int32): a tensor of
 * ids' shape. Differentiable in the logits. Rows are processed in chunks of about 16M logits, so
 * only the gradient itself is ever logits-sized.
 */
export function selectiveLogSoftmax(logits: tf.Tensor, ids: tf.Tensor, opts: LogProbOptions = {}): tf.Tensor {
  const temperature = opts.temperature ?? 1;
  if (!(temperature > 0)) throw new Error(`selectiveLogSoftmax: temperature must be > 0, got ${temperature}`);
  const V = logits.shape.at(-1)!;
  if (!tf.util.arraysEqual(logits.shape.slice(0, -1), ids.shape)) {
    throw new Error(`selectiveLogSoftmax: ids have shape [${ids.shape}], logits [${logits.shape}]; expected ids [${logits.shape.slice(0, -1)}]`);
  }
  const op = customOp((z: tf.Tensor, y: tf.Tensor) => {
    const z2 = z.reshape([-1, V]) as tf.Tensor2D;
    const y1 = y.reshape([-1]).toInt() as tf.Tensor1D;
    return {
      value: forwardRows(z2, y1, temperature, rowsPerChunk(V, opts)).reshape(y.shape),
      save: [z2, y1],
      gradFunc: (dy, saved) => {
        const [zs, ys] = saved as [tf.Tensor2D, tf.Tensor1D];
        return [backwardRows(zs, ys, dy.reshape([-1]) as tf.Tensor1D, temperature, rowsPerChunk(V, opts)).reshape(z.shape), tf.zerosLike(y)];
      },
    };
  });
  return op(logits, ids);
}

function scale(z: tf.Tensor2D, temperature: number): tf.Tensor2D {
  return temperature === 1 ? z : (z.div(temperature) as tf.Tensor2D);
}

/** Applies f to row blocks of x (each freed before the next) and concatenates the [rows] results. */
function mapRowChunks(x: tf.Tensor2D, rows: number, f: (chunk: tf.Tensor2D, r0: number, rows: number) => tf.Tensor1D): tf.Tensor1D {
  const [N, V] = x.shape;
  if (rows >= N) return tf.tidy(() => f(x, 0, N));
  const parts: tf.Tensor1D[] = [];
  for (let r0 = 0; r0 < N; r0 += rows) {
    const c = Math.min(rows, N - r0);
    parts.push(tf.tidy(() => f(x.slice([r0, 0], [c, V]), r0, c)));
  }
  const out = tf.concat(parts);
  tf.dispose(parts);
  return out;
}

function forwardRows(z: tf.Tensor2D, ids: tf.Tensor1D, temperature: number, rows: number): tf.Tensor1D {
  return mapRowChunks(z, rows, (chunk, r0, c) => {
    const s = scale(chunk, temperature);
    const V = s.shape[1];
    const picked = tf.gather(s.reshape([-1]), tf.range(0, c, 1, 'int32').mul(tf.scalar(V, 'int32')).add(ids.slice(r0, c)));
    return picked.sub(tf.logSumExp(s, -1)) as tf.Tensor1D;
  });
}

/**
 * d logp / d z = (onehot(y) - softmax(z / T)) / T, times the upstream gradient, row chunk by row
 * chunk. On wasm each chunk is copied into one preallocated output through the heap, so the
 * gradient exists once (a concat would hold it twice: 1.2 GB more at 2,048 x 151,936).
 */
function backwardRows(z: tf.Tensor2D, ids: tf.Tensor1D, dy: tf.Tensor1D, temperature: number, rows: number): tf.Tensor2D {
  const [N, V] = z.shape;
  const chunkGrad = (r0: number, c: number) =>
    tf.tidy(() => {
      const g = dy.slice(r0, c).div(temperature).expandDims(1);
      const p = tf.softmax(scale(z.slice([r0, 0], [c, V]), temperature));
      return tf.oneHot(ids.slice(r0, c), V).sub(p).mul(g) as tf.Tensor2D; // (wasm's OneHot ignores a float32 dtype)
    });
  if (rows >= N) return chunkGrad(0, N);
  if (tf.getBackend() === 'wasm') {
    const backend = tf.backend() as BackendWasm;
    const out = tf.zeros([N, V]) as tf.Tensor2D; // fresh and unshared: filled through the heap
    for (let r0 = 0; r0 < N; r0 += rows) {
      const part = chunkGrad(r0, Math.min(rows, N - r0));
      // Views after the chunk exists: its allocation may have moved the heap.
      (backend.typedArrayFromHeap(out) as Float32Array).set(backend.typedArrayFromHeap(part) as Float32Array, r0 * V);
      part.dispose();
    }
    return out;
  }
  const parts: tf.Tensor2D[] = [];
  for (let r0 = 0; r0 < N; r0 += rows) parts.push(chunkGrad(r0, Math.min(rows, N - r0)));
  const out = tf.concat(parts);
  tf.dispose(parts);
  return out;
}
