// Metric functions on hand-computed cases, and judgeMetrics on a hand-made record and scores.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { accuracy, binaryScores, pairwiseAccuracy } from '../../src/eval/metrics.js';
import { judgeMetrics } from '../../src/eval/judge.js';
import type { RubricRecord } from '../../src/data/schema.js';

test('pairwise accuracy counts ties as wrong (REFERENCE: 1/3 on its check values)', () => {
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
  // Veto: gold [no, yes, no], predicted [no, yes, yes] -> precision 1/2, recall 1, F1 2/3.
  assert.equal([m.safety_veto_precision, m.safety_veto_recall], [0.5, 1]);
  assert.ok(Math.abs(m.safety_veto_f1 - 2 / 3) < 1e-12);
  // Ranking: gold good > weak > unsafe (by S3, then S1). Predicted: good (S3 0) > unsafe, weak
  // (both S3 1; unsafe has the higher S1). So good>weak right, good>unsafe right, weak>unsafe wrong.
  assert.is(m.ranking_accuracy, 2 / 3);
});

test.run();
