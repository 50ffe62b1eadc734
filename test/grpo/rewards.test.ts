// GRPO reward functions: the RM-guided ProMedical reward equals the reward model's own scoring;
// its three tier terms are the RM's S1, S2, S3 from one pass and sum back to it; a prompt without
// criteria is an error; DAPO's overlong penalty by hand.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadRecords } from '../../src/data/records.js';
import { loadTokenizer } from '../../src/data/tokenizer.js';
import { loadQwen3 } from '../../src/model/pretrained.js';
import { ensureTinyQwen3 } from '../../src/model/tiny.js';
import { overlongPenalty, rubricReward, rubricRewardTerms } from '../../src/grpo/rewards.js';
import { combineRewards } from '../../src/grpo/advantages.js';
import { CriteriaRewardModel } from '../../src/reward/model.js';
import { useBackend } from '../helpers/backends.js';

test('DAPO soft overlong penalty (docs/formulas.md) at the boundaries', async () => {
  const f = overlongPenalty(20, 8);
  const ids = (n: number) => Array.from({ length: n }, () => 1);
  assert.equal(await f.score([], [], [ids(12), ids(16), ids(20), ids(21)]), [0, -0.5, -1, -1]);
});

test('the RM reward is the reward model\'s ProMedical reward per completion; no criteria is an error', async () => {
  await useBackend('wasm');
  const dir = await ensureTinyQwen3(undefined, { log: () => {} });
  const rm = new CriteriaRewardModel(await loadQwen3(dir), loadTokenizer(dir), { maxLength: 256, seed: 1 });
  const [record] = await loadRecords(new URL('../../data/test.jsonl', import.meta.url).pathname);
  const prompt = { id: record.id, messages: record.prompt, context: record };
  const texts = record.responses.map((r) => r.text);
  const got = await rubricReward(rm).score(texts.map(() => prompt), texts, texts.map(() => []));
  const want = (await rm.scoreResponses(record.prompt, texts, record.criteria)).map((s) => s.reward);
  assert.equal(got, want);
  try {
    await rubricReward(rm).score([{ id: 'bare', messages: record.prompt }], ['x'], [[]]);
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /prompt bare has no rubric criteria/);
  }
  // The three terms: S1, S2, S3 weighted 1, alpha, -lambda, one RM pass for all three.
  let passes = 0;
  const scoreResponses = rm.scoreResponses.bind(rm);
  rm.scoreResponses = (...args) => (passes++, scoreResponses(...args));
  const terms = rubricRewardTerms(rm, { alpha: 0.2, lambda: 2 });
  assert.equal(terms.map((f) => [f.name, f.weight]), [['promedical_s1', 1], ['promedical_s2', 0.2], ['promedical_s3', -2]]);
  const prompts = texts.map(() => prompt);
  const perTerm = await Promise.all(terms.map((f) => f.score(prompts, texts, texts.map(() => []))));
  assert.is(passes, 1, 'one RM pass for the three terms');
  const scores = (await scoreResponses(record.prompt, texts, record.criteria)).map((s) => s.scores);
  assert.equal(perTerm, [scores.map((s) => s.s1), scores.map((s) => s.s2), scores.map((s) => s.s3)]);
  // Their weighted sum is the scalar reward (the clip cannot bind when alpha <= beta).
  const scalar = await rubricReward(rm, { alpha: 0.2, lambda: 2 }).score(prompts, texts, texts.map(() => []));
  const summed = combineRewards(perTerm, terms.map((f) => f.weight!));
  scalar.forEach((r, i) => assert.ok(Math.abs(r - summed[i]) < 1e-6, `${r} vs ${summed[i]}`));
  rm.dispose();
});

test.run();
