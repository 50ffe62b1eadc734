// Batched autoregressive generation with a KV cache: greedy or seeded sampling.
import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import type { Qwen3ForCausalLM } from './qwen3.js';

export interface GenerateOptions {
  /** Upper bound on new tokens per row. */
  maxNewTokens: number;
  /** 0 (default) decodes greedily; otherwise logits are divided by it before sampling. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or unset: no limit). Qwen3 recommends 20. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (nucleus). */
  topP?: number;
  /** Drop tokens less likely than minP times the most likely one. */
  minP?: number;
  /** A row ends at the first of these it emits (Qwen3: 151645 <|im_end|>, 151643 <|endoftext|>). */
  stopTokenIds?: number[];
  /** Fills the left padding of shorter prompts; default the config's bos id (<|endoftext|>). */
  padTokenId?: number;
  /** Seeds sampling: same seed, same tokens. */
  seed?: number | string;
}

/**
 * Continues each prompt (token ids; lengths may differ) and returns only the new tokens of each
 * row, ending with its stop token when one was emitted. Prompts are left padded into one batch,
 * with position ids counting real tokens only, so a row's output does not depend on its batch.
 */
export async function generate(model: Qwen3ForCausalLM, prompts: number[][], opts: GenerateOptions): Promise<number[][]> {
  const { vocabSize, bosTokenId } = model.config;
  const B = prompts.length;
  if (B === 0) return [];
  if (!(opts.maxNewTokens >= 0)) throw new Error('generate: maxNewTokens must be >= 0');
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new Error(`generate: prompt ${i} is empty`);
    for (const id of p) if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new Error(`generate: prompt ${i} holds id ${id}, outside [0, ${vocabSize})`);
  });
  const temperature = opts.temperature ?? 0;
  const stops = new Set(opts.stopTokenIds ?? []);
  const pad = opts.padTokenId ?? bosTokenId;
  const rng = seedrandom(String(opts.seed ?? 0));

  const L = Math.max(...prompts.map((p) => p.length));
  const ids = new Int32Array(B * L);
  const mask = new Int32Array(B * L);
  const pos = new Int32Array(B * L);
  const nextPos = new Int32Array(B);
  prompts.forEach((p, b) => {
    const offset = L - p.length;
    for (let j = 0; j < L; j++) {
      const real = j >= offset;
      ids[b * L + j] = real ? p[j - offset] : pad;
      mask[b * L + j] = real ? 1 : 0;
      pos[b * L + j] = real ? j - offset : 1;
    }
    nextPos[b] = p.length;
  });

  const out: number[][] = prompts.map(() => []);
  const done = new Array<boolean>(B).fill(false);
  let maskT = tf.tensor2d(mask, [B, L], 'int32');
  // Each step's tidy returns the extended cache and the last logits; everything else is freed.
  let { cache, logits } = tf.tidy(() => {
    const step = model.decode(tf.tensor2d(ids, [B, L], 'int32'), { attentionMask: maskT, positionIds: tf.tensor2d(pos, [B, L], 'int32') });
    return { cache: step.cache, logits: lastLogits(model, step.hidden) };
  });
  try {
    for (let t = 0; t < opts.maxNewTokens; t++) {
      const next = await pick(logits, temperature, opts, rng);
      for (let b = 0; b < B; b++) {
        if (done[b]) continue;
        out[b].push(next[b]);
        if (stops.has(next[b])) done[b] = true;
      }
      if (done.every(Boolean) || t === opts.maxNewTokens - 1) break;
      const feed = Int32Array.from(next, (id, b) => (done[b] ? pad : id));
      const positions = Int32Array.from(nextPos);
      for (let b = 0; b < B; b++) nextPos[b]++;
      const prev = { cache, logits, maskT };
      maskT = tf.tidy(() => tf.concat([prev.maskT, tf.ones([B, 1], 'int32')], 1));
      ({ cache, logits } = tf.tidy(() => {
        const step = model.decode(tf.tensor2d(feed, [B, 1], 'int32'), {
          attentionMask: maskT,
          positionIds: tf.tensor2d(positions, [B, 1], 'int32'),
          cache: prev.cache,
        });
        return { cache: step.cache, logits: lastLogits(model, step.hidden) };
      }));
      tf.dispose([prev.logits, prev.maskT, ...prev.cache.flatMap((c) => [c.k, c.v])]);
    }
  } finally {
    tf.dispose([logits, maskT, ...cache.flatMap((c) => [c.k, c.v])]);
  }
  return out;
}

/** Logits of the last position only: [B, V] (the LM head never runs over the whole prompt). */
function lastLogits(model: Qwen3ForCausalLM, hidden: tf.Tensor3D): tf.Tensor2D {
  const [B, T, H] = hidden.shape;
  return model.logits(hidden.slice([0, T - 1, 0], [B, 1, H])).reshape([B, -1]) as tf.Tensor2D;
}

/** The next token of every row: argmax on the device, or sampling from host candidates. */
async function pick(logits: tf.Tensor2D, temperature: number, opts: GenerateOptions, rng: () => number): Promise<number[]> {
  if (temperature <= 0) {
    const arg = tf.argMax(logits, -1);
    const ids = Array.from(await arg.data());
    arg.dispose();
    return ids;
  }
  const [B, V] = logits.shape;
  const k = opts.topK && opts.topK > 0 ? Math.min(opts.topK, V) : V;
  // top-k on the device keeps the host transfer at B x k; without it every logit comes over.
  const top = tf.tidy(() => tf.topk(logits.div(temperature), k, true));
  const [values, indices] = await Promise.all([top.values.data(), top.indices.data()]);
  tf.dispose([top.values, top.indices]);
  const ids: number[] = [];
  for (let b = 0; b < B; b++) {
    const row = values.subarray(b * k, (b + 1) * k) as Float32Array;
    ids.push(indices[b * k + sampleSorted(row, opts.topP ?? 1, opts.minP ?? 0, rng())]);
  }
  return ids;
}

/**
 * Samples a position from logits sorted in descending order after nucleus (top-p) and min-p
 * filtering, as transformers' TopPLogitsWarper and MinPLogitsWarper (at least one token kept).
 */
export function sampleSorted(sortedLogits: Float32Array, topP: number, minP: number, u: number): number {
  const max = sortedLogits[0];
  const probs = Float64Array.from(sortedLogits, (l) => Math.exp(l - max));
  const z = probs.reduce((a, b) => a + b, 0);
  let keep = probs.length;
  if (topP < 1) {
    // Keep a token while the tokens ranked above it hold less than topP of the mass.
    let above = 0;
    for (let i = 0; i < probs.length; i++) {
      if (i > 0 && above >= topP) {
        keep = i;
        break;
      }
      above += probs[i] / z;
    }
  }
  if (minP > 0) {
    // probs[0] is the largest; renormalising after top-p does not change the ratio.
    let i = 1;
    while (i < keep && probs[i] >= minP * probs[0]) i++;
    keep = i;
  }
  let total = 0;
  for (let i = 0; i < keep; i++) total += probs[i];
  let acc = 0;
  for (let i = 0; i < keep; i++) {
    acc += probs[i] / total;
    if (u < acc) return i;
  }
  return keep - 1;
}
