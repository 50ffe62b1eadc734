// The LM head fused with the selective log-softmax: log softmax(x W^T / T)[ids] for hidden states
// x [N, H] and a head weight W [V, H], computed in row chunks, with a custom gradient for x and W.
//
// Why fused: the unfused path (logits = linear(x, W), then selectiveLogSoftmax) spends most of a
// small model's training step moving [N, V] arrays around: on wasm the logits' gradient is
// transposed twice (8 ns per element for [N, V] -> [V, N]) and softmax is built from a scalar
// Exp kernel (5 ns per element). Here every [c, V] block comes from a plain matMul with W as the
// first operand (XNNPACK's fast path, no packed copy of W kept), is transposed in the cheap
// direction once, and goes through XNNPACK's vectorised Softmax; the gradient never transposes an
// [N, V] array: dW^T = x^T (onehot - P) is a plain matMul with the block as second operand, and
// the one-hot part is a gather / segment sum of N rows.
//
// log p[y] is read off the softmax (see blockForward) instead of a separate log-sum-exp pass.
import * as tf from '@tensorflow/tfjs';
import { customOp, type CustomOpResult } from './custom_grad.js';
import { nativeGemm } from './native_gemm.js';

/** Logits per block: about 16M (64 MB of float32). */
const BLOCK_ELEMENTS = 1 << 24;
/** Logits per block when W trains: about 40M (160 MB). dW^T = x^T P sums over the block's rows,
 * and XNNPACK packs the [c, V] block for it: 263 rows of 151,936 run that product at 60-70
 * GFLOP/s on wasm, 110 rows at 35-40. */
const TRAIN_BLOCK_ELEMENTS = 40 * 2 ** 20;
/** Up to this many bytes of probabilities are kept from the forward pass for the gradient;
 * beyond it the backward pass recomputes each block (one more head matMul per block). */
const KEEP_PROBS_BYTES = 640 * 2 ** 20;
/** Above this size W is multiplied in row blocks in the gradient, so XNNPACK never caches a packed
 * copy of the whole weight (it keeps one per second-operand tensor for that tensor's lifetime). */
const PACK_W_BYTES = 128 * 2 ** 20;

export interface LmHeadOptions {
  /** Divides the logits before the softmax (default 1). */
  temperature?: number;
  /** Rows per block (default: about 16M logits per block, 40M when W trains). */
  chunkRows?: number;
  /** Compute dL/dW (default true); false treats W as a constant (frozen base weights). */
  trainWeight?: boolean;
  /** Also return each row's entropy -sum p log p: true (a constant for autodiff), or
   * 'differentiable' (its gradient flows into x and W too: an entropy bonus in a loss). */
  entropy?: boolean | 'differentiable';
  /** Rows of W per product in the gradient (default: all of a W up to 128 MB, else 32 MB blocks);
   * fewer than V also computes the logits with W as the first operand, untransposed. */
  wBlockRows?: number;
  /** Recompute the probabilities in the backward pass instead of keeping them (default: keep
   * them when they take at most 640 MB). */
  recompute?: boolean;
}

export interface LmHeadResult {
  /** log p of ids: [N]. */
  logp: tf.Tensor1D;
  /** Entropy of each row's distribution: [N] (with opts.entropy). */
  entropy?: tf.Tensor1D;
}

interface Block {
  r0: number;
  rows: number;
}

function blocks(N: number, rows: number): Block[] {
  const out: Block[] = [];
  for (let r0 = 0; r0 < N; r0 += rows) out.push({ r0, rows: Math.min(rows, N - r0) });
  return out;
}

/** The head's logits for a block of rows, [c, V]: x W^T with a transposed copy of a small W as the
 * second operand (XNNPACK packs it once per call of the op), else (W x^T)^T with W first. */
function blockLogits(xs: tf.Tensor2D, w: tf.Tensor2D, wT: tf.Tensor2D | null): tf.Tensor2D {
  if (wT) return tf.matMul(xs, wT);
  // A native BLAS takes the transposed operand as it is.
  return nativeGemm() ? tf.matMul(xs, w, false, true) : (tf.matMul(w, xs.transpose()).transpose() as tf.Tensor2D);
}

/** Smallest normal float32: log-probabilities saturate at log(FLT_MIN) = -87.34. */
const FLT_MIN = 1.1754943508222875e-38;

/**
 * Probabilities and log p[y] for one block of (already temperature-scaled) rows. log p[y] is read
 * off the softmax, log(max(p[y], FLT_MIN)): one pass fewer than a separate log-sum-exp, exact
 * unless the model gives y less than 1e-38 (then it reads -87.34; the gradient, built from P, is
 * exact regardless). With `entropy`, log p[y] is exact everywhere: z[y] - m + log p_max, since
 * the row maximum m has probability p_max = exp(m - lse); H = lse - sum p z.
 */
function blockForward(xs: tf.Tensor2D, w: tf.Tensor2D, wT: tf.Tensor2D | null, ids: tf.Tensor1D, entropy: boolean) {
  return tf.tidy(() => {
    const [c] = xs.shape;
    const V = w.shape[0];
    const z = blockLogits(xs, w, wT);
    const p = tf.softmax(z) as tf.Tensor2D;
    const flat = tf.range(0, c, 1, 'int32').mul(tf.scalar(V, 'int32')).add(ids);
    if (!entropy) {
      const logp = tf.gather(p.reshape([-1]), flat).maximum(FLT_MIN).log() as tf.Tensor1D;
      return { p, logp, ent: undefined };
    }
    const m = z.max(-1);
    const lse = m.sub(p.max(-1).log());
    const logp = tf.gather(z.reshape([-1]), flat).sub(lse) as tf.Tensor1D;
    return { p, logp, ent: lse.sub(p.mul(z).sum(-1)) as tf.Tensor1D };
  });
}

/** P @ W ([c, V] x [V, H]), in blocks of `rows` rows of W when W is large (see PACK_W_BYTES). */
function probsTimesW(p: tf.Tensor2D, w: tf.Tensor2D, rows: number): tf.Tensor2D {
  const [V, H] = w.shape;
  if (rows >= V) return tf.matMul(p, w);
  let acc: tf.Tensor2D | null = null;
  for (let v0 = 0; v0 < V; v0 += rows) {
    const k = Math.min(rows, V - v0);
    const next: tf.Tensor2D = tf.tidy(() => {
      const part = tf.matMul(p.slice([0, v0], [-1, k]), w.slice([v0, 0], [k, H])) as tf.Tensor2D;
      return acc ? acc.add(part) : part;
    });
    acc?.dispose();
    acc = next;
  }
  return acc!;
}

/**
 * P_b @ W for every kept block P_b of a large W, W's row blocks in the outer loop: each W slice is
 * packed by XNNPACK once and used by every block, instead of once per block (measured on the
 * 0.6B head, [110, 8192] x [8192, 1024]: 53 ms per product when the slice is new, 36 ms reused).
 */
function keptProbsTimesW(ps: tf.Tensor2D[], w: tf.Tensor2D, rows: number): tf.Tensor2D[] {
  const [V, H] = w.shape;
  let acc: tf.Tensor2D[] = [];
  for (let v0 = 0; v0 < V; v0 += rows) {
    const k = Math.min(rows, V - v0);
    const next = tf.tidy(() => {
      const wc = w.slice([v0, 0], [k, H]);
      return ps.map((p, b) => {
        const part = tf.matMul(p.slice([0, v0], [-1, k]), wc) as tf.Tensor2D;
        return (acc.length ? acc[b].add(part) : part) as tf.Tensor2D;
      });
    });
    tf.dispose(acc);
    acc = next;
  }
  return acc;
}

/**
 * log softmax(x W^T / temperature)[ids] for x [N, H], W [V, H] (PyTorch's layout of an LM head or
 * a tied embedding) and ids [N] int32, differentiable in x and (unless trainWeight is false) W.
 */
export function lmHeadLogProbs(x: tf.Tensor2D, w: tf.Tensor2D, ids: tf.Tensor1D, opts: LmHeadOptions = {}): LmHeadResult {
  const temperature = opts.temperature ?? 1;
  if (!(temperature > 0)) throw new Error(`lmHeadLogProbs: temperature must be > 0, got ${temperature}`);
  const [N, H] = x.shape;
  const [V, Hw] = w.shape;
  if (H !== Hw) throw new Error(`lmHeadLogProbs: hidden size ${H} but the head weight is [${w.shape}]`);
  if (ids.shape[0] !== N) throw new Error(`lmHeadLogProbs: ${ids.shape[0]} ids for ${N} rows`);
  const trainWeight = opts.trainWeight ?? true;
  const rows = opts.chunkRows ?? Math.max(1, Math.floor((trainWeight ? TRAIN_BLOCK_ELEMENTS : BLOCK_ELEMENTS) / V));
  const keepProbs = !(opts.recompute ?? N * V * 4 > KEEP_PROBS_BYTES);
  // XNNPACK: a large W is used in blocks of rows (PACK_W_BYTES); a small one whole, and transposed
  // once. A native BLAS packs nothing per tensor and takes transposed operands: W whole, as it is.
  const native = nativeGemm() !== null;
  const wRows = opts.wBlockRows ?? (native || V * H * 4 <= PACK_W_BYTES ? V : Math.max(1, Math.floor(PACK_W_BYTES / 4 / H / 4)));
  const entropyGrad = opts.entropy === 'differentiable';
  let entropy: tf.Tensor1D | undefined;

  // The op's inputs: x and W (when trained); ids and a frozen W are closed over.
  const f = (xi: tf.Tensor2D, wi: tf.Tensor2D): CustomOpResult<tf.Tensor1D> => {
    // With a differentiable entropy the op's value is [logp; entropy] ([2N]), split after it.
    const xs = temperature === 1 ? xi : (xi.div(temperature) as tf.Tensor2D);
    // A small W is transposed once per call: its [H, V] copy makes every block's logits one plain
    // product without transposing a [c, V] block (which costs more than the product on wasm).
    const smallW = wRows >= V && !native;
    const wT = smallW ? (wi.transpose() as tf.Tensor2D) : null;
    const parts = blocks(N, rows).map((b) => blockForward(xs.slice([b.r0, 0], [b.rows, H]), wi, wT, ids.slice(b.r0, b.rows), (opts.entropy ?? false) !== false));
    wT?.dispose();
    const logp = tf.concat(parts.map((q) => q.logp)) as tf.Tensor1D;
    const ent = opts.entropy ? (tf.concat(parts.map((q) => q.ent!)) as tf.Tensor1D) : undefined;
    const probs = keepProbs ? parts.map((q) => q.p) : [];
    tf.dispose(parts.flatMap((q) => [q.logp, ...(q.ent ? [q.ent] : []), ...(keepProbs ? [] : [q.p])]));
    let value = logp;
    if (entropyGrad) {
      value = tf.concat([logp, ent!]) as tf.Tensor1D;
      tf.dispose(logp);
    } else if (ent) entropy = tf.keep(ent);
    return {
      value,
      save: [xs, wi, ids, ...(entropyGrad ? [ent!] : []), ...probs], // ids too: a tensor made inside the op is freed after it
      gradFunc: (dyAll, saved) => {
        const [xsS, wS, idsS, ...rest] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D, ...tf.Tensor2D[]];
        const entS = entropyGrad ? (rest.shift() as unknown as tf.Tensor1D) : null;
        const kept = rest;
        // With z = (x / T) W^T and d logp / d z = onehot(y) - P:
        //   dL/dx_i = (dy_i / T) (W[y_i] - P_i W),   dL/dW = sum_i dy_i (onehot(y_i) - P_i)^T (x_i / T).
        // A differentiable entropy adds d H / d z = -P (log P + H) with its upstream gradient g_i, so
        // the P part becomes M_i = P_i (dy_i + g_i (log P_i + H_i)) and dz_i = dy_i onehot(y_i) - M_i.
        const dy = entropyGrad ? dyAll.slice(0, N) : dyAll;
        const dyEnt = entropyGrad ? dyAll.slice(N, N) : null;
        const pPart = (p: tf.Tensor2D, b: Block) => tf.tidy(() => {
          const col = (t: tf.Tensor1D) => t.slice(b.r0, b.rows).expandDims(1);
          return p.mul(col(dy).add(col(dyEnt!).mul(p.maximum(FLT_MIN).log().add(col(entS!))))) as tf.Tensor2D;
        });
        const dyT = dy.div(temperature) as tf.Tensor1D;
        const dxParts: tf.Tensor2D[] = [];
        // The P part of dW, accumulated over blocks: as dW^T [H, V] on XNNPACK (plain products),
        // as dW [V, H] on a native BLAS (a transposed operand instead of a [V, H] transpose).
        let dWp: tf.Tensor2D | null = null;
        const blockList = blocks(N, rows);
        const keptM = entropyGrad && keepProbs ? kept.map((p, k) => pPart(p, blockList[k])) : null;
        const keptPW = keepProbs && wRows < V ? keptProbsTimesW(keptM ?? kept, wS, wRows) : null;
        // Recomputed blocks take the same transposed small W as the forward pass did.
        const wTr = !keepProbs && wRows >= V && !native ? (wS.transpose() as tf.Tensor2D) : null;
        for (const [k, b] of blockList.entries()) {
          const s = dyT.slice(b.r0, b.rows).expandDims(1);
          const sw = dy.slice(b.r0, b.rows).expandDims(1);
          const xb = xsS.slice([b.r0, 0], [b.rows, H]);
          const p = keepProbs ? kept[k] : tf.tidy(() => blockForward(xb, wS, wTr, idsS.slice(b.r0, b.rows), false).p);
          // q: the block's P part, already weighted by the upstream gradients when it is M.
          const q = keptM ? keptM[k] : entropyGrad ? pPart(p, b) : p;
          dxParts.push(tf.tidy(() => {
            const qW = keptPW ? keptPW[k] : probsTimesW(q, wS, wRows);
            const wy = tf.gather(wS, idsS.slice(b.r0, b.rows));
            return (entropyGrad ? wy.mul(s).sub(qW.div(temperature)) : wy.sub(qW).mul(s)) as tf.Tensor2D;
          }));
          if (trainWeight) {
            const next: tf.Tensor2D = tf.tidy(() => {
              const xw = entropyGrad ? xb : xb.mul(sw);
              const part = native ? tf.matMul(q, xw, true, false) : (tf.matMul(xw.transpose(), q) as tf.Tensor2D); // [V, H] or [H, V]
              return (dWp ? dWp.add(part) : part) as tf.Tensor2D;
            });
            dWp?.dispose();
            dWp = next;
          }
          if (!keepProbs) p.dispose();
          if (q !== p && !keptM) q.dispose();
          tf.dispose([s, sw, xb]);
        }
        const dx = tf.concat(dxParts) as tf.Tensor2D;
        tf.dispose([dyT, ...dxParts, ...(keptPW ?? []), ...(keptM ?? []), ...(wTr ? [wTr] : []), ...(dyEnt ? [dyEnt] : [])]);
        if (!trainWeight) {
          if (entropyGrad) dy.dispose();
          return [dx];
        }
        const onehotPart = tf.tidy(() => tf.unsortedSegmentSum(xsS.mul(dy.expandDims(1)), idsS, V)); // sum_i dy_i x_i / T at row y_i
        const dW = tf.tidy(() => onehotPart.sub(native ? dWp! : dWp!.transpose()));
        tf.dispose([onehotPart, dWp!, ...(entropyGrad ? [dy] : [])]);
        return [dx, dW];
      },
    };
  };
  const value = trainWeight ? customOp(f)(x, w) : customOp((xi: tf.Tensor2D) => f(xi, w))(x);
  if (entropyGrad) {
    const out = { logp: value.slice(0, N), entropy: value.slice(N, N) };
    value.dispose();
    return out;
  }
  const logp = value;
  if (!entropy) return { logp };
  // Kept out of the op's scope; a clone belongs to the caller's scope like any other result.
  const kept: tf.Tensor1D = entropy;
  const out = { logp, entropy: kept.clone() };
  kept.dispose();
  return out;
}
