// Batched autoregressive generation with a KV cache: greedy or seeded sampling, with an optional
// repetition penalty; and the sampler itself (sampleTokens), usable on any [B, V] logits.
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
  /**
   * transformers' repetition_penalty: before anything else (greedy decoding included), the logit
   * of every id already in the row (its prompt and its new tokens, not the left padding) becomes
   * logit * p when negative, else logit / p. 1 (default) is off; must be finite and > 0.
   */
  repetitionPenalty?: number;
  /** A row ends at the first of these it emits (Qwen3: 151645 <|im_end|>, 151643 <|endoftext|>). */
  stopTokenIds?: number[];
  /** Fills the left padding of shorter prompts; default the config's bos id (<|endoftext|>). */
  padTokenId?: number;
  /** Seeds sampling: same seed, same tokens. */
  seed?: number | string;
}

/** The decoding filters of GenerateOptions, as sampleTokens takes them. */
export type SamplingOptions = Pick<GenerateOptions, 'temperature' | 'topK' | 'topP' | 'minP'>;

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
  checkSampling(opts, 'generate');
  const penalty = opts.repetitionPenalty ?? 1;
  if (!(typeof penalty === 'number' && Number.isFinite(penalty) && penalty > 0)) {
    throw new Error(`generate: repetitionPenalty must be a finite number > 0 (1: off), got ${String(penalty)}`);
  }
  const stops = new Set(opts.stopTokenIds ?? []);
  const pad = opts.padTokenId ?? bosTokenId;
  const rng = seedrandom(String(opts.seed ?? 0));
  // Repetition penalty: the ids each row holds, and the same as (row, id) pairs for gatherND.
  const seen = prompts.map((p) => new Set(p));
  const pairs: number[] = seen.flatMap((s, b) => [...s].flatMap((id) => [b, id]));
  const next = async (logits: tf.Tensor2D): Promise<number[]> => {
    if (penalty === 1) return sampleTokens(logits, opts, rng);
    const penalised = tf.tidy(() => repetitionPenalty(logits, tf.tensor2d(Int32Array.from(pairs), [pairs.length / 2, 2], 'int32'), penalty));
    try {
      return await sampleTokens(penalised, opts, rng);
    } finally {
      penalised.dispose();
    }
  };

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
      const chosen = await next(logits);
      for (let b = 0; b < B; b++) {
        if (done[b]) continue;
        out[b].push(chosen[b]);
        if (stops.has(chosen[b])) done[b] = true;
        if (penalty !== 1 && !seen[b].has(chosen[b])) {
          seen[b].add(chosen[b]);
          pairs.push(b, chosen[b]);
        }
      }
      if (done.every(Boolean) || t === opts.maxNewTokens - 1) break;
      const feed = Int32Array.from(chosen, (id, b) => (done[b] ? pad : id));
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

/**
 * RepetitionPenaltyLogitsProcessor at the (row, id) pairs `at` [N, 2] (distinct): only those N
 * logits are read and rewritten, so the cost does not grow with the vocabulary beyond one copy.
 */
function repetitionPenalty(logits: tf.Tensor2D, at: tf.Tensor2D, penalty: number): tf.Tensor2D {
  if (at.shape[0] === 0) return logits.clone();
  const held = tf.gatherND(logits, at) as tf.Tensor1D;
  return tf.tensorScatterUpdate(logits, at, tf.where(held.less(0), held.mul(penalty), held.div(penalty)));
}

function checkSampling(opts: SamplingOptions, who: string): void {
  const { temperature = 0, topK = 0, topP = 1, minP = 0 } = opts;
  const bad = (name: string, value: unknown, want: string) => new Error(`${who}: ${name} must be ${want}, got ${String(value)}`);
  if (!(Number.isFinite(temperature) && temperature >= 0)) throw bad('temperature', temperature, 'a finite number >= 0 (0: greedy)');
  if (!(Number.isInteger(topK) && topK >= 0)) throw bad('topK', topK, 'a whole number >= 0 (0: off)');
  if (!(topP >= 0 && topP <= 1)) throw bad('topP', topP, 'in [0, 1] (1: off)');
  if (!(minP >= 0 && minP <= 1)) throw bad('minP', minP, 'in [0, 1] (0: off)');
}

/**
 * The next token of every row of `logits` [B, V], as generate picks it: the argmax when
 * temperature is 0 or unset (rng unused), else a draw from softmax(logits / temperature) after
 * transformers' warpers in their order (top-k, then top-p, then min-p; at least one token kept;
 * equal probabilities rank by lower id). One uniform `rng()` per row, rows in order, so the same
 * rng stream gives the same tokens and a row's token depends on its own logits and draw only.
 * One device read per call: the B ids (greedy), the B x k top-k candidates, or else the [B, V]
 * probabilities, which the host samples exactly in float64 without sorting the vocabulary: a pass
 * (two with min-p, three with top-p) over each row; min-p's cut is its threshold, top-p's comes
 * from a histogram of the row, and only the few tokens at the cut are sorted. `logits` stays the
 * caller's.
 */
export async function sampleTokens(logits: tf.Tensor2D, opts: SamplingOptions, rng: () => number): Promise<number[]> {
  checkSampling(opts, 'sampleTokens');
  const [B, V] = logits.shape;
  const temperature = opts.temperature ?? 0;
  const topP = opts.topP ?? 1;
  const minP = opts.minP ?? 0;
  if (temperature <= 0) {
    const arg = tf.argMax(logits, -1);
    try {
      return Array.from(await arg.data());
    } finally {
      arg.dispose();
    }
  }
  const k = opts.topK ?? 0;
  if (k > 0 && k < V) {
    // top-k on the device keeps the host transfer at B x k: values and ids in one float32 tensor.
    if (V > 2 ** 24) throw new Error(`sampleTokens: top-k reads ids as float32, exact below 2^24; got a vocabulary of ${V}`);
    const top = tf.tidy(() => {
      const { values, indices } = tf.topk(logits, k, true);
      return tf.concat([values, indices.toFloat()], 1);
    });
    const host = (await top.data()) as Float32Array;
    top.dispose();
    const row = new Float32Array(k);
    const ids: number[] = [];
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < k; j++) row[j] = host[2 * k * b + j] / temperature;
      ids.push(host[2 * k * b + k + sampleSorted(row, topP, minP, rng())]);
    }
    return ids;
  }
  const probs = tf.tidy(() => tf.softmax(temperature === 1 ? logits : logits.mul(1 / temperature)));
  const p = (await probs.data()) as Float32Array;
  probs.dispose();
  const rows: Rows = { p, bits: new Int32Array(p.buffer, p.byteOffset, p.length), V, ...scratch(V) };
  return Array.from({ length: B }, (_, b) => sampleRow(rows, b * V, topP, minP, rng()));
}

/** A draw sums the kept mass per block of this many tokens, then scans one block. */
const BLOCK = 512;
/**
 * Top-p buckets a row by its probabilities' top bits (a float32 >= 0 orders as its bits):
 * exponent and first 4 mantissa bits, a factor of 1 + 1/16 per bucket; then the bucket at the
 * cut by the next 10 bits, and sorts the tokens of that one sub-bucket only.
 */
const SHIFT = 19;
const BUCKETS = 2 ** (31 - SHIFT);
const SUB_SHIFT = 9;
const SUBS = 2 ** (SHIFT - SUB_SHIFT);
const LOW = 2 ** SUB_SHIFT - 1;

/** Probabilities [B, V] (row major), their bits, and scratch space for one row at a time. */
interface Rows extends Scratch {
  p: Float32Array;
  bits: Int32Array;
  V: number;
}
interface Scratch {
  sums: Float64Array;
  /** Mass per bucket and sub-bucket; all zero between rows. */
  hist: Float64Array;
  hist2: Float64Array;
  sub: Float64Array;
  /** The tokens of a bucket; rank-order keys of a sub-bucket. */
  idx: Int32Array;
  keys: Float64Array;
}

let buffers: Scratch | undefined;
/** Scratch space for rows of V tokens, reused across calls (the host part never interleaves). */
function scratch(V: number): Scratch {
  if (!buffers || buffers.idx.length < V) {
    const sums = new Float64Array(Math.ceil(V / BLOCK));
    buffers = { sums, hist: new Float64Array(BUCKETS), hist2: new Float64Array(BUCKETS), sub: new Float64Array(SUBS), idx: new Int32Array(V), keys: new Float64Array(V) };
  }
  return buffers;
}

const noMass = () => new Error('sampleTokens: a row has no finite probability mass (NaN logits?)');
const f32 = new Float32Array(1);
const i32 = new Int32Array(f32.buffer);

/**
 * Draws a token (its index in the row) from the probabilities p[off, off + V) after top-p and
 * min-p, with u uniform in [0, 1). Both filters keep a prefix of the rank order (probability
 * descending, then index ascending), so what both keep is the shorter prefix, a cut: the tokens
 * whose bits exceed cutBits, and those equal to it up to index cutIndex. Min-p's cut is its
 * threshold, exact without sorting; top-p's comes from the histogram.
 */
function sampleRow(r: Rows, off: number, topP: number, minP: number, u: number): number {
  const end = off + r.V;
  let cutBits = 0;
  let cutIndex = end;
  let maxBits = 0;
  if (topP < 1) {
    const { z, max } = histogram(r, off, end);
    maxBits = max;
    const cut = nucleusCut(r, off, end, topP * z, maxBits);
    clearHistogram(r, off, end);
    if (cut) [cutBits, cutIndex] = cut;
  } else if (minP > 0) {
    const { bits } = r;
    for (let i = off; i < end; i++) if (bits[i] > maxBits) maxBits = bits[i];
  }
  if (minP > 0) {
    // p >= minP * max exactly when p >= the least float32 at or above it.
    i32[0] = maxBits;
    const threshold = minP * f32[0];
    f32[0] = threshold;
    if (f32[0] < threshold) i32[0]++;
    if (i32[0] > cutBits) [cutBits, cutIndex] = [i32[0], end];
  }
  return draw(r, off, end, u, cutBits, cutIndex);
}

/** The draw: kept mass per block, the block u falls in, the token in it (in index order). */
function draw(r: Rows, off: number, end: number, u: number, cutBits: number, cutIndex: number): number {
  const { p, bits, sums } = r;
  const kept = (i: number) => bits[i] > cutBits || (bits[i] === cutBits && i <= cutIndex);
  let total = 0;
  for (let start = off, k = 0; start < end; start += BLOCK, k++) {
    const stop = Math.min(start + BLOCK, end);
    let a0 = 0, a1 = 0;
    let i = start;
    if (cutBits === 0) {
      for (; i + 1 < stop; i += 2) {
        a0 += p[i];
        a1 += p[i + 1];
      }
    } else if (cutIndex >= end) {
      // bits >= cutBits, without a branch: (cutBits - 1 - bits) >>> 31 is 1 exactly then.
      for (; i + 1 < stop; i += 2) {
        a0 += p[i] * ((cutBits - 1 - bits[i]) >>> 31);
        a1 += p[i + 1] * ((cutBits - 1 - bits[i + 1]) >>> 31);
      }
    }
    for (; i < stop; i++) if (kept(i)) a0 += p[i];
    sums[k] = a0 + a1;
    total += sums[k];
  }
  if (!(total > 0 && Number.isFinite(total))) throw noMass();
  let target = u * total;
  let block = 0;
  for (let k = 0; k * BLOCK < end - off; k++) {
    if (!(sums[k] > 0)) continue;
    block = k;
    if (target < sums[k]) break;
    target -= sums[k];
  }
  // Rounding past the block's end gives its last kept token.
  const start = off + block * BLOCK;
  const stop = Math.min(start + BLOCK, end);
  let acc = 0;
  let pick = start;
  for (let i = start; i < stop; i++) {
    if (!(p[i] > 0 && kept(i))) continue;
    pick = i;
    acc += p[i];
    if (acc > target) break;
  }
  return pick - off;
}

/** The row's mass per bucket into r.hist (two interleaved histograms, then folded), its total and largest bits. */
function histogram(r: Rows, off: number, end: number): { z: number; max: number } {
  const { p, bits, hist, hist2 } = r;
  let z0 = 0, z1 = 0, m0 = 0, m1 = 0;
  let i = off;
  for (; i + 1 < end; i += 2) {
    const x = bits[i], y = bits[i + 1];
    z0 += p[i];
    z1 += p[i + 1];
    if (x > m0) m0 = x;
    if (y > m1) m1 = y;
    hist[x >>> SHIFT] += p[i];
    hist2[y >>> SHIFT] += p[i + 1];
  }
  if (i < end) {
    z0 += p[i];
    m0 = Math.max(m0, bits[i]);
    hist[bits[i] >>> SHIFT] += p[i];
  }
  if (end - off < BUCKETS) {
    for (let j = off + 1; j < end; j += 2) {
      const b = bits[j] >>> SHIFT;
      hist[b] += hist2[b];
      hist2[b] = 0;
    }
  } else {
    for (let b = 0; b < BUCKETS; b++) hist[b] += hist2[b];
    hist2.fill(0);
  }
  const z = z0 + z1;
  if (!(z > 0 && Number.isFinite(z))) {
    clearHistogram(r, off, end);
    throw noMass();
  }
  return { z, max: Math.max(m0, m1) };
}

function clearHistogram(r: Rows, off: number, end: number): void {
  if (end - off < BUCKETS) for (let i = off; i < end; i++) r.hist[r.bits[i] >>> SHIFT] = 0;
  else r.hist.fill(0);
}

/**
 * Top-p's cut [bits, index]: a token stays while the tokens ranked above it hold less than `mass`
 * (topP times the row's total), the first one always, as transformers' TopPLogitsWarper. The index
 * is past the row unless the cut splits tokens of equal probability. Null when every token stays.
 */
function nucleusCut(r: Rows, off: number, end: number, mass: number, maxBits: number): [number, number] | null {
  const { p, bits, hist, sub, idx, keys } = r;
  let above = 0;
  let bucket = maxBits >>> SHIFT;
  for (; bucket >= 0; bucket--) {
    if (!(hist[bucket] > 0)) continue;
    if (above + hist[bucket] >= mass) break;
    above += hist[bucket];
  }
  if (bucket < 0) return null;
  // The bucket's tokens (collected without a branch), then its mass per sub-bucket.
  let n = 0;
  for (let i = off; i < end; i++) {
    idx[n] = i;
    n += (((bits[i] >>> SHIFT) ^ bucket) - 1) >>> 31;
  }
  for (let j = 0; j < n; j++) sub[(bits[idx[j]] >>> SUB_SHIFT) & (SUBS - 1)] += p[idx[j]];
  let s = SUBS - 1;
  for (; s > 0; s--) {
    if (!(sub[s] > 0)) continue;
    if (above + sub[s] >= mass) break;
    above += sub[s];
  }
  if (n < SUBS) for (let j = 0; j < n; j++) sub[(bits[idx[j]] >>> SUB_SHIFT) & (SUBS - 1)] = 0;
  else sub.fill(0);
  // Sub-bucket s in rank order (key: its low bits inverted, then the index), kept while above < mass.
  let m = 0;
  let least = bits[idx[0]];
  for (let j = 0; j < n; j++) {
    const b = bits[idx[j]];
    if (((b >>> SUB_SHIFT) & (SUBS - 1)) === s) keys[m++] = (LOW - (b & LOW)) * 2 ** 32 + (idx[j] - off);
    least = Math.min(least, b);
  }
  if (m === 0) return [least, end]; // only by rounding: keep the whole bucket
  const ranked = keys.subarray(0, m).sort();
  const first = above === 0; // nothing ranks above this sub-bucket
  let k = 0;
  let last = off;
  for (; k < m && ((first && k === 0) || above < mass); k++) {
    last = off + (ranked[k] % 2 ** 32);
    above += p[last];
  }
  const split = k < m && bits[off + (ranked[k] % 2 ** 32)] === bits[last];
  return [bits[last], split ? last : end];
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
