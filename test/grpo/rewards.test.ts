// GRPO reward functions: the RM-guided ProMedical reward equals the reward model's own scoring;
// a prompt without criteria is an error; DAPO's overlong penalty by hand.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadRecords } from '../../src/data/records.js';
import { loadTokenizer } from '../../src/data/tokenizer.js';
import { loadQwen3 } from '../../src/model/pretrained.js';
import { ensureTinyQwen3 } from '../../src/model/tiny.js';
import { overlongPenalty, rubricReward } from '../../src/grpo/rewards.js';
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
  rm.dispose();
});

test.run();
