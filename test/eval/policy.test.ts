// Bootstrap intervals (hand-checkable cases and the normal approximation) and the policy report
// (consistent with the reward model's own scoring).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootstrapMean, bootstrapPairedDifference } from '../../src/eval/bootstrap.js';
import { comparePolicies, evaluateGradedResponses, evaluatePolicyResponses, policyResponse, policyResponses } from '../../src/eval/policy.js';
import type { RubricRecord } from '../../src/data/schema.js';
import { loadRecords } from '../../src/data/records.js';
import { loadTokenizer } from '../../src/data/tokenizer.js';
import { loadQwen3 } from '../../src/model/pretrained.js';
import { ensureTinyQwen3 } from '../../src/model/tiny.js';
import { CriteriaRewardModel } from '../../src/reward/model.js';
import { useBackend } from '../helpers/backends.js';

test('bootstrap: a constant has a zero-width interval; seeded; close to the normal approximation', () => {
  const c = bootstrapMean([0.7, 0.7, 0.7], { seed: 1 });
  for (const v of [c.mean, c.low, c.high]) assert.ok(Math.abs(v - 0.7) < 1e-12);
  assert.ok(c.std < 1e-12);
  const coin = Array.from({ length: 400 }, (_, i) => i % 2);
  const a = bootstrapMean(coin, { seed: 3 });
  assert.equal(a, bootstrapMean(coin, { seed: 3 }));
  assert.is.not(a.std, bootstrapMean(coin, { seed: 4 }).std, 'another seed resamples differently');
  // Normal approximation: mean 0.5, standard error sqrt(0.25 / 400) = 0.025, 95% half-width 0.049.
  assert.is(a.mean, 0.5);
  assert.ok(Math.abs(a.std - 0.025) < 0.003, `std ${a.std}`);
  assert.ok(Math.abs(a.low - 0.451) < 0.01 && Math.abs(a.high - 0.549) < 0.01, `[${a.low}, ${a.high}]`);
  assert.equal(bootstrapPairedDifference(coin, coin, { seed: 1 }), { mean: 0, low: 0, high: 0, std: 0 });
  assert.ok(Number.isNaN(bootstrapMean([]).mean));
});

test('policy report: generated responses judged by the RM; fields agree with its own scoring', async () => {
  await useBackend('wasm');
  const dir = await ensureTinyQwen3(undefined, { log: () => {} });
  const tok = loadTokenizer(dir);
  const rm = new CriteriaRewardModel(await loadQwen3(dir), tok, { maxLength: 256, seed: 2 });
  const policy = await loadQwen3(dir);
  const records = (await loadRecords(new URL('../../data/test.jsonl', import.meta.url).pathname)).slice(0, 3);
  const texts = await policyResponses(policy, tok, records, { maxNewTokens: 8 });
  assert.is(texts.length, 3);
  const report = await evaluatePolicyResponses(rm, records, texts, 5);
  for (const [i, row] of report.responses.entries()) {
    const [s] = await rm.scoreResponses(records[i].prompt, [texts[i]], records[i].criteria);
    assert.equal([row.s1, row.s2, row.s3, row.reward], [s.scores.s1, s.scores.s2, s.scores.s3, s.reward]);
    assert.is(row.safe, s.scores.s3 === 0);
    assert.is(row.accuracy, s.probabilities.filter((p) => p >= 0.5).length / records[i].criteria.length);
  }
  const mean = report.responses.reduce((a, r) => a + (r.safe ? 1 : 0), 0) / 3;
  assert.is(report.overall.safety_compliance.mean, mean);
  assert.ok(Object.keys(report.bySpecialty).length >= 1);
  rm.dispose();
  policy.dispose();
});

// Two records graded by hand: r1 has every tier, r2 no safety criterion.
const graded: RubricRecord[] = [
  {
    id: 'r1', prompt: [{ role: 'user', content: 'q1' }], category: 'triage', specialty: 'cardiology',
    criteria: [
      { id: 'p1', text: 'a', tier: 'proficiency', weight: 0.75 }, { id: 'p2', text: 'b', tier: 'proficiency', weight: 0.25 },
      { id: 'e1', text: 'c', tier: 'excellence' }, { id: 's1', text: 'd', tier: 'safety' },
    ],
    responses: [{ id: 'x', text: 'X1', grades: { p1: true, p2: false, e1: true, s1: false } }, { id: 'y', text: 'Y1', grades: { p1: true, p2: true, e1: false, s1: true } }],
  },
  {
    id: 'r2', prompt: [{ role: 'user', content: 'q2' }], category: 'triage', specialty: 'dermatology',
    criteria: [{ id: 'p1', text: 'a', tier: 'proficiency', weight: 1 }, { id: 'e1', text: 'c', tier: 'excellence' }],
    responses: [{ id: 'x', text: 'X2', grades: { p1: false, e1: true } }, { id: 'y', text: 'Y2', grades: { p1: true, e1: true } }],
  },
];

test('a judged response: accuracy overall and per tier, S1/S2/S3, safety and reward by hand', () => {
  const r = policyResponse(graded[0], 'X1', [1, 0, 1, 0]);
  assert.is(r.accuracy, 2 / 4);
  assert.equal([r.accuracy_proficiency, r.accuracy_excellence, r.accuracy_safety], [0.5, 1, 0]);
  assert.equal([r.s1, r.s2, r.s3, r.safe], [0.75, 1, 1, false]);
  assert.ok(Math.abs(r.reward - (0.75 + 0.1 * 1 - 1.5)) < 1e-12); // clip(S1 + 0.1 S2, 0, 1.5) - 1.5 S3
  assert.ok(Number.isNaN(policyResponse(graded[1], 'X2', [0, 1]).accuracy_safety), 'no safety criterion: no safety accuracy');
});

test('provided grades: the records\' own responses, per-tier means skip records without the tier; paired comparison', () => {
  const x = evaluateGradedResponses(graded, 'x', 1);
  const y = evaluateGradedResponses(graded, 'y', 1);
  assert.equal(x.responses.map((r) => r.text), ['X1', 'X2']);
  // overall accuracy: x (2/4 + 1/2) / 2 = 0.5; y (3/4 + 2/2) / 2 = 0.875. Safety: x 0 of 1 record, y 1 of 1.
  assert.is(x.overall.overall_accuracy.mean, 0.5);
  assert.is(y.overall.overall_accuracy.mean, 0.875);
  assert.equal([x.overall.accuracy_safety.mean, y.overall.accuracy_safety.mean], [0, 1]);
  assert.equal([x.overall.safety_compliance.mean, y.overall.safety_compliance.mean], [0.5, 1]);
  assert.equal(Object.keys(x.bySpecialty), ['cardiology', 'dermatology']);
  const c = comparePolicies(y, x, 1);
  assert.is(c.overall_accuracy.difference.mean, 0.375);
  assert.is(c.accuracy_safety.difference.mean, 1, 'paired over the one record with a safety criterion');
  assert.is(c.safety_compliance.a.mean, 1);
  assert.throws(() => comparePolicies(y, evaluateGradedResponses([graded[1], graded[0]], 'x')), /same records/);
  assert.throws(() => evaluateGradedResponses(graded, 'z'), /record r1 has no response "z"/);
});

test.run();
