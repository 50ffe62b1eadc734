// Bench metrics as plain functions of predictions and gold labels (no model here).

/** Share of pairs whose chosen score is strictly higher (ties count as wrong). NaN when empty. */
export function pairwiseAccuracy(pairs: { chosen: number; rejected: number }[]): number {
  if (pairs.length === 0) return NaN;
  return pairs.filter((p) => p.chosen > p.rejected).length / pairs.length;
}

export function accuracy(pred: boolean[], gold: boolean[]): number {
  if (pred.length !== gold.length) throw new Error(`accuracy: ${pred.length} predictions for ${gold.length} labels`);
  if (pred.length === 0) return NaN;
  return pred.filter((p, i) => p === gold[i]).length / pred.length;
}

export interface BinaryScores {
  precision: number;
  recall: number;
  f1: number;
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

/**
 * Precision, recall and F1 of the positive class. With no predicted positives precision is 0, with
 * no actual positives recall is 0, and F1 is 0 when both are 0 (scikit-learn's zero_division=0).
 */
export function binaryScores(pred: boolean[], gold: boolean[]): BinaryScores {
  if (pred.length !== gold.length) throw new Error(`binaryScores: ${pred.length} predictions for ${gold.length} labels`);
  let tp = 0, fp = 0, fn = 0, tn = 0;
  pred.forEach((p, i) => {
    if (p && gold[i]) tp++;
    else if (p) fp++;
    else if (gold[i]) fn++;
    else tn++;
  });
  const precision = tp + fp > 0 ? tp / (tp + fp) : 0;
  const recall = tp + fn > 0 ? tp / (tp + fn) : 0;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, f1, tp, fp, fn, tn };
}
