// Bench metrics as plain functions of predictions and gold labels (no model here).

// docs/formulas.md, "Judge metrics"
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

// docs/formulas.md, "Cohen's kappa"
/**
 * Cohen's kappa between two raters' labels (any categories): (p_o - p_e) / (1 - p_e), p_o the
 * observed agreement and p_e the agreement expected from each rater's label frequencies. NaN when
 * undefined: no items, or both raters give every item the same single label (p_e = 1), as
 * scikit-learn's cohen_kappa_score.
 */
export function cohensKappa<L extends string | number | boolean>(a: L[], b: L[]): number {
  if (a.length !== b.length) throw new Error(`cohensKappa: ${a.length} labels for ${b.length}`);
  const n = a.length;
  if (n === 0) return NaN;
  const countA = new Map<L, number>();
  const countB = new Map<L, number>();
  let agree = 0;
  a.forEach((x, i) => {
    countA.set(x, (countA.get(x) ?? 0) + 1);
    countB.set(b[i], (countB.get(b[i]) ?? 0) + 1);
    if (x === b[i]) agree++;
  });
  const po = agree / n;
  let pe = 0;
  for (const [label, k] of countA) pe += (k / n) * ((countB.get(label) ?? 0) / n);
  return pe === 1 ? NaN : (po - pe) / (1 - pe);
}
