// The criteria-injected reward model on the bundled tiny Qwen3: tier heads read the last token,
// scoring follows the ProMedical formulas, training keeps the tensor count flat, and a saved
// model scores exactly as before; a bad data file is refused with file:line.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { padBatch } from '../../src/data/batch.js';
import { loadRecords } from '../../src/data/records.js';
import { DataError } from '../../src/data/schema.js';
import { loadTokenizer } from '../../src/data/tokenizer.js';
import { loadQwen3 } from '../../src/model/pretrained.js';
import { ensureTinyQwen3 } from '../../src/model/tiny.js';
import { CriteriaRewardModel } from '../../src/reward/model.js';
import { promedicalReward, promedicalScores } from '../../src/reward/scores.js';
import { trainRewardModel } from '../../src/reward/trainer.js';
import { maxAbsDiff, useBackend } from '../helpers/backends.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-rm-'));
const root = new URL('../../', import.meta.url).pathname;
let dir = '';
test.before(async () => {
  await useBackend('wasm');
  dir = await ensureTinyQwen3(undefined, { log: () => {} });
});
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function makeRm(sharedHead = false) {
  return new CriteriaRewardModel(await loadQwen3(dir), loadTokenizer(dir), { sharedHead, maxLength: 256, seed: 3 });
}

test('each row is scored by its tier head at the last token: logit = h_last . w_tier', async () => {
  const rm = await makeRm();
  const batch = padBatch([[151644, 872, 198, 9707, 151645], [9707, 1879, 151645]], 151643);
  const tiers = ['safety', 'excellence'] as const;
  const logits = rm.score(batch, [...tiers]).dataSync();
  const hidden = rm.backbone.hiddenStates(batch.inputIds, { attentionMask: batch.attentionMask }).arraySync() as number[][][];
  tiers.forEach((t, b) => {
    const h = hidden[b][hidden[b].length - 1];
    const w = rm.heads.get(`score.${t}.weight`)!.dataSync();
    const dot = h.reduce((a, v, j) => a + v * w[j], 0);
    assert.ok(Math.abs(logits[b] - dot) < 1e-5, `row ${b}`);
  });
  // The same input under another tier's head scores differently: heads are separate.
  const same = padBatch([[9707, 1879, 151645], [9707, 1879, 151645]], 151643);
  const two = rm.score(same, ['safety', 'proficiency']).dataSync();
  assert.ok(Math.abs(two[0] - two[1]) > 1e-6);
  const shared = await makeRm(true);
  const one = shared.score(same, ['safety', 'proficiency']).dataSync();
  assert.ok(Math.abs(one[0] - one[1]) < 1e-7, 'a shared head scores the same input identically for any tier');
  rm.dispose();
  shared.dispose();
});

test('scoreResponses gives probabilities, S1/S2/S3 and the reward by the ProMedical formulas', async () => {
  const rm = await makeRm();
  const [record] = await loadRecords(path.join(root, 'data/test.jsonl'));
  const scored = await rm.scoreResponses(record.prompt, record.responses.map((r) => r.text), record.criteria);
  assert.is(scored.length, record.responses.length);
  for (const s of scored) {
    assert.ok(s.probabilities.every((p) => p > 0 && p < 1));
    const expected = promedicalScores(record.criteria.map((c, j) => ({ tier: c.tier, weight: c.weight, met: s.probabilities[j] })));
    assert.equal(s.scores, expected);
    assert.is(s.reward, promedicalReward(expected));
  }
  rm.dispose();
});

/** Resolves to the message the promise rejects with (fails when it resolves). */
async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as Error).message;
  }
  assert.unreachable('expected a rejection');
  return '';
}

test('scoring validates its inputs: an unknown tier names the criterion, its tier and the allowed tiers', async () => {
  const rm = await makeRm();
  const before = tf.memory().numTensors;
  const prompt = [{ role: 'user', content: 'My father has crushing chest pain.' }];
  const criteria = [
    { id: 'c1', text: 'Is clear.', tier: 'proficiency' as const },
    { id: 'c-vital', text: 'Says to call emergency services.', tier: 'critical' as any },
  ];
  assert.is(await rejection(rm.scoreResponses(prompt, ['Call 911.'], criteria)), 'scoreResponses: criteria[1] (id "c-vital") has tier "critical"; allowed tiers: proficiency, excellence, safety');
  assert.match(await rejection(rm.scoreResponses(prompt, ['Call 911.'], [{ id: 'c1', text: 'Is clear.' } as any])), /criteria\[0\] \(id "c1"\) has tier missing; allowed tiers: proficiency, excellence, safety/);
  assert.match(await rejection(rm.scoreResponses(prompt, ['Call 911.'], [])), /^scoreResponses: no criteria to score against$/);
  assert.match(await rejection(rm.scoreResponses(prompt, [], criteria.slice(0, 1))), /^scoreResponses: no responses to score$/);
  assert.match(await rejection(rm.scoreResponses(prompt, ['a'], [criteria[0], { ...criteria[0] }])), /criteria\[1\]: criterion id "c1" appears twice/);
  assert.match(await rejection(rm.scoreResponses(prompt, ['a', 7 as any], criteria.slice(0, 1))), /responses\[1\]: expected a string, got number/);
  const record = { id: 'rec', prompt, criteria, responses: [{ id: 'r', text: 'Call 911.' }] };
  assert.is(
    await rejection(rm.scoreItems([{ record, responseId: 'r', criterionId: 'c1' }, { record, responseId: 'r', criterionId: 'c-vital' }])),
    'scoreItems: items[1]: record "rec", criterion "c-vital" has tier "critical"; allowed tiers: proficiency, excellence, safety',
  );
  assert.match(await rejection(rm.scoreItems([{ record, responseId: 'r', criterionId: 'c9' }])), /items\[0\]: record "rec" has no criterion "c9"/);
  const batch = padBatch([[9707, 151645], [9707, 151645]], 151643);
  assert.throws(() => rm.score(batch, ['safety', 'critical' as any]), /^score: tiers\[1\] is "critical"; allowed tiers: proficiency, excellence, safety$/);
  assert.throws(() => rm.score(batch, ['safety']), /^score: 1 tiers for a batch of 2 rows/);
  tf.dispose([batch.inputIds, batch.attentionMask]);
  assert.is(tf.memory().numTensors, before, 'no tensor left behind by a rejected call');
  rm.dispose();
});

test('training keeps the tensor count flat; the saved model scores exactly as the trained one', async () => {
  const rm = await makeRm();
  const train = (await loadRecords(path.join(root, 'data/train.jsonl'))).slice(0, 6);
  const counts: number[] = [];
  const { run } = await trainRewardModel({
    rm, train, quiet: true, config: { out: path.join(tmp, 'run'), steps: 4, lr: 1e-3, batch_size: 4, micro_batch_size: 2, seed: 1, eval_every: 1 },
    evaluate: async () => {
      counts.push(tf.memory().numTensors);
      return {};
    },
  });
  assert.equal(new Set(counts.slice(1)).size, 1, `numTensors after each step: ${counts}`);
  const records = train.slice(0, 2);
  const items = records.flatMap((record) => record.responses.flatMap((r) => record.criteria.map((c) => ({ record, responseId: r.id, criterionId: c.id }))));
  const before = await rm.scoreItems(items);
  await rm.save(path.join(tmp, 'rm'));
  const loaded = await CriteriaRewardModel.load(path.join(tmp, 'rm'));
  const after = await loaded.scoreItems(items);
  assert.is(maxAbsDiff(before, after), 0);
  run.dispose();
  rm.dispose();
  loaded.dispose();
});

test('a run killed after its step-2 checkpoint resumes to the same losses as the uninterrupted run', async () => {
  const train = (await loadRecords(path.join(root, 'data/train.jsonl'))).slice(0, 5);
  const go = async (runDir: string, resume: boolean) => {
    const rm = await makeRm();
    const { run } = await trainRewardModel({ rm, train, quiet: true, config: { out: runDir, steps: 4, lr: 1e-3, batch_size: 4, micro_batch_size: 4, seed: 2, save_every: 2, resume } });
    const losses = run.metrics.rows().filter((r) => typeof r.loss === 'number').map((r) => r.loss as number);
    run.dispose();
    rm.dispose();
    return losses;
  };
  const runDir = path.join(tmp, 'killed');
  const straight = await go(runDir, false);
  // The kill: the step-4 checkpoint never happened.
  fs.rmSync(path.join(runDir, 'checkpoints', 'step-000004'), { recursive: true });
  const resumed = await go(runDir, true);
  assert.is(straight.length, 4);
  assert.equal(resumed, straight, 'metrics after resuming: steps 1-2 kept, 3-4 recomputed identically');
});

test('the training records are checked before training: a bad tier names file, line and field', async () => {
  const bad = path.join(tmp, 'bad.jsonl');
  const lines = fs.readFileSync(path.join(root, 'data/train.jsonl'), 'utf8').split('\n').slice(0, 2);
  const broken = JSON.parse(lines[1]);
  broken.criteria[0].tier = 'vital';
  fs.writeFileSync(bad, [lines[0], JSON.stringify(broken)].join('\n') + '\n');
  try {
    await loadRecords(bad);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, DataError);
    assert.match((err as Error).message, new RegExp(`${bad}:2: criteria\\[0\\]\\.tier: expected one of proficiency, excellence, safety, got "vital"`));
  }
});

test.run();
