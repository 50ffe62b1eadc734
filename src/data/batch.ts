// Token batches: rows of ids left-padded to one length, with their attention mask.
import * as tf from '@tensorflow/tfjs';

/** A padded batch: left padding, so every row's last real token is at column T - 1. */
export interface TokenBatch {
  inputIds: tf.Tensor2D; // [B, T] int32
  attentionMask: tf.Tensor2D; // [B, T] int32, 1 = token
}

/** Left-pads rows to the longest (or to `length`) and builds the attention mask. */
export function padBatch(rows: number[][], padId: number, length?: number): TokenBatch {
  const T = length ?? Math.max(...rows.map((r) => r.length));
  const B = rows.length;
  const ids = new Int32Array(B * T).fill(padId);
  const mask = new Int32Array(B * T);
  rows.forEach((r, b) => {
    if (r.length > T) throw new Error(`row ${b} has ${r.length} tokens, more than the batch length ${T}`);
    ids.set(r, b * T + T - r.length);
    mask.fill(1, b * T + T - r.length, (b + 1) * T);
  });
  return {
    inputIds: tf.tensor2d(ids, [B, T], 'int32'),
    attentionMask: tf.tensor2d(mask, [B, T], 'int32'),
  };
}

export function disposeBatch(b: TokenBatch): void {
  tf.dispose([b.inputIds, b.attentionMask]);
}
