// Metric functions on hand-computed cases, and judgeMetrics on a hand-made record and scores.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { accuracy, binaryScores, cohensKappa, pairwiseAccuracy } from '../../src/eval/metrics.js';
import { judgeMetrics } from '../../src/eval/judge.js';
import type { RubricRecord } from '../../src/data/schema.js';

test('pairwise accuracy counts ties as wrong (TRL check values: 1/3)', () => {
  assert.is(pairwiseAccuracy([{ chosen: 1, rejected: 0 }, { chosen: 0.2, rejected: 0.5 }, { chosen: -0.3, rejected: -0.3 }]), 1 / 3);
  assert.ok(Number.isNaN(pairwiseAccuracy([])));
});

test('precision / recall / F1 with the edge cases: no predicted positives, no actual positives', () => {
  assert.equal(binaryScores([true, true, false, false], [true, false, true, false]), { precision: 0.5, recall: 0.5, f1: 0.5, tp: 1, fp: 1, fn: 1, tn: 1 });
  const none = binaryScores([false, false], [true, false]);
  assert.equal([none.precision, none.recall, none.f1], [0, 0, 0]);
  const noGold = binaryScores([true, false], [false, false]);
  assert.equal([noGold.precision, noGold.recall, noGold.f1], [0, 0, 0]);
  assert.is(accuracy([true, false, true], [true, true, true]), 2 / 3);
});

test("Cohen's kappa: textbook 2x2 table, perfect and opposite raters, undefined cases, three labels", () => {
  // 50 items: both yes 20, A yes / B no 5, A no / B yes 10, both no 15. p_o = 0.7, p_e = 0.5*0.6 + 0.5*0.4 = 0.5.
  const a = [...Array(25).fill(true), ...Array(25).fill(false)];
  const b = [...Array(20).fill(true), ...Array(5).fill(false), ...Array(10).fill(true), ...Array(15).fill(false)];
  assert.ok(Math.abs(cohensKappa(a, b) - 0.4) < 1e-12);
  assert.is(cohensKappa([1, 2, 2], [1, 2, 2]), 1);
  assert.is(cohensKappa([true, false], [false, true]), -1);
  assert.ok(Number.isNaN(cohensKappa([], [])), 'no items');
  assert.ok(Number.isNaN(cohensKappa(['x', 'x'], ['x', 'x'])), 'one shared label: p_e = 1');
  assert.is(cohensKappa(['x', 'x'], ['x', 'y']), 0, 'a constant rater agrees only by chance');
  // Three labels: p_o = 5/6; marginals A (a 3, b 2, c 1), B (a 2, b 3, c 1): p_e = (6 + 6 + 1) / 36.
  const k = cohensKappa(['a', 'a', 'a', 'b', 'b', 'c'], ['a', 'a', 'b', 'b', 'b', 'c']);
  assert.ok(Math.abs(k - (5 / 6 - 13 / 36) / (1 - 13 / 36)) < 1e-12, `${k}`);
  assert.throws(() => cohensKappa([true], []), /1 labels for 0/);
});

test('judge metrics on one record with scores chosen by hand', () => {
  const record: RubricRecord = {
    id: 'r', prompt: [{ role: 'user', content: 'q' }],
    criteria: [
      { id: 'p', text: 'p', tier: 'proficiency', weight: 1 },
      { id: 'e', text: 'e', tier: 'excellence' },
      { id: 's', text: 's', tier: 'safety' },
    ],
    responses: [
      { id: 'good', text: 'a', grades: { p: true, e: true, s: true } },
      { id: 'unsafe', text: 'b', grades: { p: true, e: false, s: false } },
      { id: 'weak', text: 'c', grades: { p: false, e: false, s: true } },
    ],
  };
  // logits: > 0 means "met". The judge gets p right everywhere, misses e on 'good', and calls
  // 'weak' unsafe (a false veto) while catching 'unsafe'.
  const logits: Record<string, number> = { 'good|p': 2, 'good|e': -1, 'good|s': 3, 'unsafe|p': 1, 'unsafe|e': -2, 'unsafe|s': -2, 'weak|p': -1, 'weak|e': -3, 'weak|s': -0.5 };
  const m = judgeMetrics([record], (_, r, c) => logits[`${r}|${c}`]);
  // Pairs: p: good>weak (2 > -1), unsafe>weak (1 > -1); e: good>unsafe (-1 > -2), good>weak (-1 > -3);
  // s: good>unsafe (3 > -2), weak>unsafe (-0.5 > -2). All six right.
  assert.is(m.pairs, 6);
  assert.is(m.pairwise_accuracy, 1);
  // Pointwise: 9 judgements, wrong on good|e and weak|s.
  assert.is(m.pointwise_accuracy, 7 / 9);
  assert.is(m.pointwise_accuracy_safety, 2 / 3);
  // Kappa over the 9: predicted met 3 of 9, gold met 5 of 9; p_o = 7/9, p_e = (3*5 + 6*4)/81 = 39/81.
  assert.ok(Math.abs(m.kappa - 4 / 7) < 1e-12, `kappa ${m.kappa}`);
  // Veto: gold [no, yes, no], predicted [no, yes, yes] -> precision 1/2, recall 1, F1 2/3.
  assert.equal([m.safety_veto_precision, m.safety_veto_recall], [0.5, 1]);
  assert.ok(Math.abs(m.safety_veto_f1 - 2 / 3) < 1e-12);
  // Ranking: gold good > weak > unsafe (by S3, then S1). Predicted: good (S3 0) > unsafe, weak
  // (both S3 1; unsafe has the higher S1). So good>weak right, good>unsafe right, weak>unsafe wrong.
  assert.is(m.ranking_accuracy, 2 / 3);
});

test.run();
