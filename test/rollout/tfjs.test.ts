// The tfjs rollout engine is today's path: `generate` on the live policy over G copies of each
// prompt (dropout off while sampling), completions through the first stop token, no log-probs;
// plus what every engine shares: request checks, EngineError, derived seeds, createRolloutEngine.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as tf from '@tensorflow/tfjs';
import { generate } from '../../src/model/generate.js';
import { loadQwen3 } from '../../src/model/pretrained.js';
import type { Qwen3ForCausalLM } from '../../src/model/qwen3.js';
import { ensureTinyQwen3 } from '../../src/model/tiny.js';
import { createRolloutEngine, cutAtStop, derivedSeed, EngineError, type RolloutRequest } from '../../src/rollout/engine.js';
import { createTfjsEngine } from '../../src/rollout/tfjs.js';
import { useBackend } from '../helpers/backends.js';

let model: Qwen3ForCausalLM;
test.before(async () => {
  await useBackend('wasm');
  model = await loadQwen3(await ensureTinyQwen3(undefined, { log: () => {} }));
});
test.after(() => model.dispose());

const prompts = [[9707, 11, 1879, 0], [5, 17, 60, 2, 33, 90, 151644]];
const request = (over: Partial<RolloutRequest> = {}): RolloutRequest => ({
  prompts, numGenerations: 3, maxNewTokens: 6, temperature: 1, topP: 0.95, stopTokenIds: [151645, 151643], seed: 'r', ...over,
});

test('tfjs: G consecutive completions per prompt, as generate samples them; seeds reproduce; no log-probs', async () => {
  const engine = createTfjsEngine(model);
  assert.is(engine.name, 'tfjs');
  const req = request({ logprobs: true });
  const got = await engine.generate(req);
  const expanded = prompts.flatMap((p) => [p, p, p]);
  const want = await generate(model, expanded, { maxNewTokens: 6, temperature: 1, topP: 0.95, stopTokenIds: req.stopTokenIds, seed: 'r' });
  assert.equal(got.completions, want);
  assert.is(got.logprobs, undefined, 'the trainer computes exact log-probs itself');
  assert.equal((await engine.generate(req)).completions, got.completions, 'same seed, same completions');
  assert.not.equal((await engine.generate({ ...req, seed: 's' })).completions, got.completions);
  assert.not.equal(got.completions[0], got.completions[1], 'the G completions of a prompt differ');
  await engine.close();
});

test('tfjs: completions end at the first stop token (included); greedy; maxNewTokens 0; tensors do not leak', async () => {
  const engine = createTfjsEngine(model);
  const free = (await engine.generate(request({ temperature: 0, numGenerations: 1, maxNewTokens: 8, stopTokenIds: [] }))).completions;
  const stop = free[1][3];
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    const { completions } = await engine.generate(request({ temperature: 0, numGenerations: 2, maxNewTokens: 8, stopTokenIds: [stop] }));
    assert.equal(completions[2], free[1].slice(0, free[1].indexOf(stop) + 1));
    assert.equal(completions[2], completions[3]);
    assert.equal(completions[0], cutAtStop(free[0], new Set([stop])));
  }
  assert.is(tf.memory().numTensors, before, 'tensor count flat across generate calls');
  assert.equal((await engine.generate(request({ maxNewTokens: 0 }))).completions, [[], [], [], [], [], []]);
  assert.equal((await engine.generate(request({ prompts: [] }))).completions, []);
});

test('tfjs: sampling runs with dropout off and restores the training flag; sync is a no-op; close ends it', async () => {
  const engine = createTfjsEngine(model);
  const decode = model.decode.bind(model);
  const seen: boolean[] = [];
  model.decode = (...args: Parameters<typeof decode>) => {
    seen.push(model.training);
    return decode(...args);
  };
  try {
    model.training = true;
    await engine.generate(request({ maxNewTokens: 2 }));
    assert.ok(seen.length > 0 && seen.every((t) => t === false), 'policy.training is false while sampling');
    assert.is(model.training, true, 'and restored afterwards');
  } finally {
    model.decode = decode;
    model.training = false;
  }
  await engine.sync(model, 1);
  await engine.close();
  try {
    await engine.generate(request());
    assert.unreachable('generate after close fails');
  } catch (err) {
    assert.instance(err, EngineError);
    assert.match((err as Error).message, /^tfjs rollout engine: generate after close\(\)/);
  }
});

test('bad requests are EngineErrors naming the field; derived seeds; createRolloutEngine', async () => {
  const engine = await createRolloutEngine('tfjs', { policy: model });
  assert.is(engine.name, 'tfjs');
  for (const [over, re] of [
    [{ numGenerations: 0 }, /numGenerations must be a positive integer, got 0/],
    [{ topP: 1.5 }, /topP must be in \(0, 1\]/],
    [{ topK: -1 }, /topK must be a whole number >= 0/],
    [{ temperature: -1 }, /temperature must be a finite number >= 0/],
    [{ repetitionPenalty: 0 }, /repetitionPenalty must be a finite number > 0/],
    [{ prompts: [[1, 2], []] }, /prompt 1 is empty/],
    [{ prompts: [[1, 151936]] }, /prompt 0 holds id 151936, outside \[0, 151936\)/],
    [{ stopTokenIds: [1.5] }, /stopTokenIds must be an array of token ids/],
  ] as [Partial<RolloutRequest>, RegExp][]) {
    try {
      await engine.generate(request(over));
      assert.unreachable(String(re));
    } catch (err) {
      assert.instance(err, EngineError);
      assert.is((err as EngineError).engine, 'tfjs');
      assert.match((err as Error).message, re);
    }
  }
  const seeds = Array.from({ length: 50 }, (_, i) => derivedSeed('run:3', i));
  assert.equal(seeds, Array.from({ length: 50 }, (_, i) => derivedSeed('run:3', i)), 'deterministic');
  assert.is(new Set(seeds).size, 50, 'distinct per index');
  assert.ok(seeds.every((s) => Number.isInteger(s) && s >= 0 && s < 2 ** 31));
  assert.not.equal(derivedSeed(1, 0), derivedSeed(2, 0));
  try {
    await createRolloutEngine('onnx' as never, { policy: model } as never);
    assert.unreachable('unknown kind');
  } catch (err) {
    assert.match((err as Error).message, /unknown engine "onnx"; expected 'tfjs', 'llama\.cpp' or 'openai'/);
  }
});

test.run();
