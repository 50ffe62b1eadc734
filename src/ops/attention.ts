// Scaled dot-product attention with grouped key/value heads and an additive mask.
import * as tf from '@tensorflow/tfjs';

/** The most negative finite float32: masked scores stay finite, so fully masked rows do too. */
export const MASK_VALUE = -3.4028234663852886e38;

/**
 * Additive mask [B, 1, T, S] for T new queries over S = past + T keys: 0 where query t (at absolute
 * index past + t) may attend key s (s <= past + t and the key is not padding), MASK_VALUE elsewhere.
 * `keyMask` [B, S] marks real tokens with 1 and padding with 0 (null: no padding).
 */
export function causalMask(batch: number, queryLen: number, keyLen: number, keyMask: tf.Tensor2D | null): tf.Tensor4D {
  return tf.tidy(() => {
    const past = keyLen - queryLen;
    const q = tf.range(past, keyLen, 1, 'int32').reshape([queryLen, 1]);
    const k = tf.range(0, keyLen, 1, 'int32').reshape([1, keyLen]);
    let allowed = tf.lessEqual(k, q).reshape([1, 1, queryLen, keyLen]); // causal
    if (keyMask) allowed = tf.logicalAnd(allowed, keyMask.cast('bool').reshape([batch, 1, 1, keyLen]));
    else allowed = allowed.tile([batch, 1, 1, 1]);
    return tf.sub(1, allowed.toFloat()).mul(MASK_VALUE) as tf.Tensor4D;
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
    const qg = q.reshape([B, nKV, rep * T, D]);
    const scores = tf.matMul(qg, k, false, true).mul(1 / Math.sqrt(D)).reshape([B, nKV, rep, T, S]);
    const probs = tf.softmax(scores.add(mask.reshape([B, 1, 1, T, S])), -1).reshape([B, nKV, rep * T, S]);
    return tf.matMul(probs, v).reshape([B, nH, T, D]) as tf.Tensor4D;
  });
}
