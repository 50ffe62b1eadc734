// Bootstrap intervals (hand-checkable cases and the normal approximation) and the policy report
// (consistent with the reward model's own scoring).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootstrapMean, bootstrapPairedDifference } from '../../src/eval/bootstrap.js';
import { evaluatePolicyResponses, policyResponses } from '../../src/eval/policy.js';
import { loadRecords } from '../../src/data/records.js';
import { loadTokenizer } from '../../src/data/tokenizer.js';
import { loadQwen3 } from '../../src/model/checkpoint.js';
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

test.run();
