// Scaled dot-product attention with grouped key/value heads and an additive mask.
import * as tf from '@tensorflow/tfjs';
import { customOp } from './custom_grad.js';
import { nativeGemm } from './native_gemm.js';

/** The most negative finite float32: masked scores stay finite, so fully masked rows do too. */
export const MASK_VALUE = -3.4028234663852886e38;

/**
 * Additive mask [B, 1, T, S] (or [1, 1, T, S] when nothing is padded: it broadcasts over the batch)
 * for T new queries over S = past + T keys: 0 where query t (at absolute index past + t) may attend
 * key s (s <= past + t and the key is not padding), MASK_VALUE elsewhere. `keyMask` [B, S] marks real
 * tokens with 1 and padding with 0 (null: no padding). The causal part is written on the host (no
 * data read back): on wasm the comparison and tiling kernels it replaces took 45 ms at T = 512.
 */
export function causalMask(batch: number, queryLen: number, keyLen: number, keyMask: tf.Tensor2D | null): tf.Tensor4D {
  return tf.tidy(() => {
    const past = keyLen - queryLen;
    const table = new Float32Array(queryLen * keyLen);
    for (let t = 0; t < queryLen; t++) table.fill(MASK_VALUE, t * keyLen + past + t + 1, (t + 1) * keyLen);
    const causal = tf.tensor4d(table, [1, 1, queryLen, keyLen]);
    if (!keyMask) return causal;
    // Padding keys: MASK_VALUE where keyMask is 0; the minimum keeps either mask without overflow.
    const padding = tf.sub(1, keyMask.toFloat()).mul(MASK_VALUE).reshape([batch, 1, 1, keyLen]);
    return tf.minimum(causal, padding) as tf.Tensor4D;
  });
}

/**
 * softmax(q k^T / sqrt(D) + mask) v for q [B, nH, T, D] and k, v [B, nKV, S, D], where query head h
 * reads kv head floor(h / (nH / nKV)). The query heads of a group are folded into the row axis
 * ([B, nKV, rep*T, D]) so keys and values are never copied per head.
 */
export function attention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [B, nH, T, D] = q.shape;
    const [, nKV, S] = k.shape;
    const rep = nH / nKV;
    const G = B * nKV;
    const qg = q.reshape([G, rep * T, D]) as tf.Tensor3D;
    const scores = groupedMatMul(qg, k.reshape([G, S, D]) as tf.Tensor3D, true).mul(1 / Math.sqrt(D)).reshape([B, nKV, rep, T, S]);
    const probs = tf.softmax(scores.add(mask.reshape([mask.shape[0], 1, 1, T, S])), -1).reshape([G, rep * T, S]) as tf.Tensor3D;
    return groupedMatMul(probs, v.reshape([G, S, D]) as tf.Tensor3D, false).reshape([B, nH, T, D]) as tf.Tensor4D;
  });
}

/**
 * a[g] @ b[g] (or a[g] @ b[g]^T with transposeB) for a [G, M, K]. On wasm a batched or transposed
 * matMul takes a naive loop (about 1.5 GFLOP/s against XNNPACK's 30+), so each group is a plain 2D
 * product there, and so is every product of the gradient (small explicit transposes instead of
 * transposed products). Other backends get tf.matMul.
 */
export function groupedMatMul(a: tf.Tensor3D, b: tf.Tensor3D, transposeB: boolean): tf.Tensor3D {
  if (tf.getBackend() !== 'wasm' || nativeGemm()) return tf.matMul(a, b, false, transposeB);
  const op = customOp((x: tf.Tensor3D, y: tf.Tensor3D) => {
    const G = x.shape[0];
    const product = (l: tf.Tensor3D, r: tf.Tensor3D, tl: boolean, tr: boolean) =>
      tf.tidy(() => {
        const out: tf.Tensor2D[] = [];
        for (let g = 0; g < G; g++) {
          const lg = l.slice([g, 0, 0], [1, -1, -1]).squeeze([0]) as tf.Tensor2D;
          const rg = r.slice([g, 0, 0], [1, -1, -1]).squeeze([0]) as tf.Tensor2D;
          out.push(tf.matMul(tl ? lg.transpose() : lg, tr ? rg.transpose() : rg));
        }
        return tf.stack(out) as tf.Tensor3D;
      });
    return {
      value: product(x, y, false, transposeB),
      save: [x, y],
      gradFunc: (d, saved) => {
        const [xs, ys] = saved as [tf.Tensor3D, tf.Tensor3D];
        const [, M, K] = xs.shape;
        const N = d.shape[2];
        // C = A B': dA = dC B'^T. For B the two ways to write the product transpose different
        // things: A^T dC transposes A [M, K]; (dC^T A)^T transposes dC [M, N] and the [N, K] result.
        // The cheaper one is taken (in attention A is [rep*T, S] probabilities or [rep*T, D] queries).
        const dx = product(d, ys, false, !transposeB);
        const aTdC = () => product(xs, d, true, false); // [K, N]
        const dCTa = () => product(d, xs, true, false); // [N, K]
        const viaA = M * K < M * N + N * K;
        const dyB = transposeB
          ? viaA ? tf.tidy(() => aTdC().transpose([0, 2, 1])) : dCTa()
          : viaA ? aTdC() : tf.tidy(() => dCTa().transpose([0, 2, 1]));
        return [dx, dyB];
      },
    };
  });
  return op(a, b);
}
