// The GRPO trainer end to end on the tiny Qwen3: TRL's metrics, KL zero before the first update
// and positive after, the reference policy required when beta != 0, a flat tensor count, a simple
// learnable rule reward that rises, resume equal to an uninterrupted run (with the adaptive entropy
// coefficient), DAPO's dynamic sampling, one generation batch for several steps, TR-DPO's
// reference sync and the periodic evaluation.
// (Whether GRPO raises the reward model's reward is measured by npm run train-grpo.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadTokenizer } from '../../src/data/tokenizer.js';
import { loadQwen3, saveQwen3 } from '../../src/model/pretrained.js';
import { trainSft } from '../../src/train/sft.js';
import { ensureTinyQwen3 } from '../../src/model/tiny.js';
import { trainGrpo, type RewardFunction } from '../../src/grpo/trainer.js';
import { useBackend } from '../helpers/backends.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-grpo-'));
test.before(() => useBackend('wasm'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const prompts = [{ id: 'a', messages: [{ role: 'user', content: 'Name a vitamin.' }] }, { id: 'b', messages: [{ role: 'user', content: 'What helps a cough?' }] }];

test('metrics with TRL names; KL is 0 before the first update and positive after; flat tensor count', async () => {
  const dir = await ensureTinyQwen3(undefined, { log: () => {} });
  const policy = await loadQwen3(dir);
  const reference = await loadQwen3(dir);
  const counts: number[] = [];
  const lowIds: RewardFunction = {
    name: 'low_ids',
    score: async (_p, _t, ids) => {
      counts.push(tf.memory().numTensors); // same point of every step
      return ids.map((c) => c.filter((id) => id < 20000).length / Math.max(1, c.length));
    },
  };
  const run = await trainGrpo({
    policy, tokenizer: loadTokenizer(dir), rewards: [lowIds], quiet: true, prompts, reference,
    config: { out: path.join(tmp, 'grpo'), steps: 4, lr: 2e-3, seed: 0, prompts_per_step: 2, num_generations: 4, max_new_tokens: 5, beta: 0.04, loss_type: 'grpo' },
  });
  const rows = run.metrics.rows().filter((r) => typeof r.reward === 'number');
  assert.is(rows.length, 4);
  for (const k of ['reward', 'reward_std', 'frac_reward_zero_std', 'kl', 'clip_ratio/low_mean', 'clip_ratio/high_mean', 'clip_ratio/region_mean', 'completions/mean_length', 'completions/clipped_ratio', 'rewards/low_ids/mean', 'entropy']) {
    assert.type(rows[0][k], 'number', k);
  }
  // Per-token entropy of a softmax over V ids lies in (0, log V]; a random-init model is near log V.
  const logV = Math.log(policy.config.vocabSize);
  assert.ok((rows[0].entropy as number) > 0.5 * logV && (rows[0].entropy as number) <= logV + 1e-3, `entropy ${rows[0].entropy}, log V ${logV}`);
  assert.ok(Math.abs(rows[0].kl as number) < 1e-6, `KL before any update: ${rows[0].kl}`);
  assert.ok((rows[3].kl as number) > 1e-4, 'the policy has moved away from the reference');
  assert.is(rows[0]['completions/clipped_ratio'], 1, 'no stop token in 5 tokens: every completion truncated');
  assert.equal(new Set(counts.slice(2)).size, 1, `numTensors at each step: ${counts}`);
  run.dispose();
  policy.dispose();
  reference.dispose();
});

// A rule the policy can learn: answer "Yes". A random-init policy is near uniform over 151,936 ids
// and would never sample it, so a short SFT first teaches it to answer "Yes." or "No." (as a real
// run starts from an instruction-tuned model); GRPO must then prefer "Yes".
const questions = ['Is water wet?', 'Should I rest?', 'Is it serious?', 'Can I eat now?'];
const yesNo = questions.map((q, i) => ({
  id: `q${i}`, prompt: [{ role: 'user' as const, content: q }], criteria: [], responses: [{ id: 'y', text: 'Yes.' }, { id: 'n', text: 'No.' }],
}));
const saysYes: RewardFunction = { name: 'yes', score: async (_p, texts) => texts.map((t) => (t.trim().startsWith('Yes') ? 1 : 0)) };

test('a learnable rule reward rises: last fifth of steps above the first fifth, KL reported', async () => {
  const dir = await ensureTinyQwen3(undefined, { log: () => {} });
  const tokenizer = loadTokenizer(dir);
  const policy = await loadQwen3(dir);
  const sft = await trainSft({ model: policy, tokenizer, records: yesNo, quiet: true, config: { out: path.join(tmp, 'yes-sft'), steps: 12, lr: 5e-2, seed: 1, batch_size: 8, micro_batch_size: 8 } });
  sft.dispose();
  await saveQwen3(policy, path.join(tmp, 'yes-sft', 'policy'), { dtype: 'float32' });
  const reference = await loadQwen3(path.join(tmp, 'yes-sft', 'policy')); // the frozen starting point
  const run = await trainGrpo({
    policy, tokenizer, rewards: [saysYes], quiet: true, prompts: yesNo.map((r) => ({ id: r.id, messages: r.prompt })), reference,
    config: { out: path.join(tmp, 'yes-grpo'), steps: 10, lr: 1e-2, seed: 1, prompts_per_step: 2, num_generations: 4, max_new_tokens: 4, beta: 0.04, loss_type: 'grpo' },
  });
  const rows = run.metrics.rows().filter((r) => typeof r.reward === 'number');
  const mean = (xs: typeof rows, k: string) => xs.reduce((a, r) => a + (r[k] as number), 0) / xs.length;
  const first = mean(rows.slice(0, 2), 'reward');
  const last = mean(rows.slice(-2), 'reward');
  assert.ok(last > first + 0.4, `reward first fifth ${first.toFixed(3)}, last fifth ${last.toFixed(3)}`);
  assert.ok(rows.every((r) => Number.isFinite(r.kl)), 'KL on every row');
  assert.ok((rows.at(-1)!.kl as number) > 1e-3, 'the policy moved away from the reference');
  run.dispose();
  policy.dispose();
  reference.dispose();
});

const evenIds: RewardFunction = { name: 'even', score: async (_p, _t, ids) => ids.map((c) => c.filter((id) => id % 2 === 0).length / Math.max(1, c.length)) };

test('a resumed run continues exactly as an uninterrupted one (rollouts, rewards, losses)', async () => {
  const dir = await ensureTinyQwen3(undefined, { log: () => {} });
  const tokenizer = loadTokenizer(dir);
  const go = async (runDir: string, steps: number, resume: boolean) => {
    const policy = await loadQwen3(dir);
    const reference = await loadQwen3(dir);
    const run = await trainGrpo({
      policy, tokenizer, rewards: [evenIds], quiet: true, prompts, reference,
      // The adaptive entropy controller's state (coefficient, last entropy) must survive the resume.
      config: {
        out: runDir, steps, lr: 1e-2, lr_scheduler: 'constant', seed: 3, save_every: 2, resume, prompts_per_step: 1, num_generations: 3, max_new_tokens: 4, beta: 0.01,
        use_adaptive_entropy: true, entropy_coef: 0.01, entropy_target: 100, entropy_coef_delta: 0.02,
      },
    });
    // Every logged value but the timings.
    const rows = run.metrics.rows().map(({ seconds: _s, tokens_per_s: _t, ...rest }) => Object.fromEntries(Object.entries(rest).filter(([k]) => !k.startsWith('time/'))));
    run.dispose();
    policy.dispose();
    reference.dispose();
    return rows;
  };
  const whole = await go(path.join(tmp, 'whole'), 4, false);
  await go(path.join(tmp, 'split'), 2, false); // "killed" after the step-2 checkpoint
  const resumed = await go(path.join(tmp, 'split'), 4, true);
  assert.is(resumed.filter((r) => 'reward' in r).length, 4, 'reward rows of steps 1-4');
  assert.ok(resumed.some((r) => r.step === 4 && 'loss' in r && 'kl' in whole.find((w) => w.step === 4 && 'kl' in w)!));
  assert.equal(resumed, whole);
  // Entropy (about 12 nats) is below the target, so the coefficient (logged after each step's
  // update, as TRL) grows by the delta every step.
  const coefs = whole.filter((r) => 'entropy_coef' in r).map((r) => r.entropy_coef as number);
  assert.equal(coefs.map((x) => +x.toFixed(6)), [0.03, 0.05, 0.07, 0.09]);
});

const tinyPolicy = async () => {
  const dir = await ensureTinyQwen3(undefined, { log: () => {} });
  return { policy: await loadQwen3(dir), tokenizer: loadTokenizer(dir), dir };
};
const fourPrompts = ['p0', 'p1', 'p2', 'p3'].map((id) => ({ id, messages: [{ role: 'user' as const, content: `Question ${id}?` }] }));

test('dynamic sampling: groups whose rewards all agree never reach the loss, and the step is still full', async () => {
  const { policy, tokenizer } = await tinyPolicy();
  const seen: string[][] = [];
  // p0 and p1 always score 5 (zero spread); p2 and p3 score the share of even ids (varies).
  const reward: RewardFunction = {
    name: 'mixed',
    score: async (ps, _t, ids) => {
      seen.push([...new Set(ps.map((p) => p.id))]);
      return ids.map((c, i) => (ps[i].id === 'p0' || ps[i].id === 'p1' ? 5 : c.filter((id) => id % 2 === 0).length / Math.max(1, c.length)));
    },
  };
  const run = await trainGrpo({
    policy, tokenizer, rewards: [reward], quiet: true, prompts: fourPrompts,
    config: { out: path.join(tmp, 'dyn'), steps: 3, lr: 1e-3, seed: 5, prompts_per_step: 2, num_generations: 4, max_new_tokens: 6, dynamic_sampling: true, max_resample_tries: 8 },
  });
  const rows = run.metrics.rows().filter((r) => typeof r.reward === 'number');
  assert.is(rows.length, 3);
  for (const r of rows) {
    assert.is(r.frac_reward_zero_std, 0, 'no zero-spread group in the trained batch');
    assert.ok((r.reward as number) <= 1, `trained rewards are the varied ones (mean ${r.reward})`);
    assert.is(r['dynamic_sampling/unfilled_groups'], 0, 'the step is full');
    assert.is((r['dynamic_sampling/drawn_groups'] as number) - (r['dynamic_sampling/dropped_groups'] as number), 2);
  }
  assert.ok(rows.some((r) => (r['dynamic_sampling/dropped_groups'] as number) > 0), 'constant groups were drawn and dropped');
  assert.ok(seen.flat().includes('p0') || seen.flat().includes('p1'));
  run.dispose();

  // Out of tries (every group constant): the step trains on the zero-spread groups it drew.
  const flat: RewardFunction = { name: 'flat', score: async (_p, _t, ids) => ids.map(() => 1) };
  const run2 = await trainGrpo({
    policy, tokenizer, rewards: [flat], quiet: true, prompts: fourPrompts,
    config: { out: path.join(tmp, 'dyn-flat'), steps: 1, lr: 1e-3, seed: 5, prompts_per_step: 2, num_generations: 2, max_new_tokens: 3, dynamic_sampling: true, max_resample_tries: 1 },
  });
  const [row] = run2.metrics.rows().filter((r) => typeof r.reward === 'number');
  assert.equal([row['dynamic_sampling/drawn_groups'], row['dynamic_sampling/dropped_groups'], row['dynamic_sampling/unfilled_groups']], [4, 4, 2]);
  run2.dispose();
  policy.dispose();
});

test('steps_per_generation: one generation batch feeds several optimizer steps; eval/* rows every eval_every steps', async () => {
  const { policy, tokenizer } = await tinyPolicy();
  let generations = 0;
  let evalCalls = 0;
  const reward: RewardFunction = {
    name: 'even',
    score: async (ps, _t, ids) => {
      if (ps[0].id.startsWith('held')) evalCalls++;
      else generations++;
      return ids.map((c) => c.filter((id) => id % 2 === 0).length / Math.max(1, c.length));
    },
  };
  const run = await trainGrpo({
    policy, tokenizer, rewards: [reward], quiet: true, prompts: fourPrompts,
    evalPrompts: [{ id: 'held-a', messages: [{ role: 'user', content: 'Held out?' }] }],
    config: { out: path.join(tmp, 'spg'), steps: 4, lr: 1e-2, seed: 2, prompts_per_step: 1, num_generations: 3, max_new_tokens: 4, steps_per_generation: 2, eval_every: 2, num_generations_eval: 2 },
  });
  assert.is(generations, 2, '4 steps from 2 generation batches');
  assert.is(evalCalls, 2, 'evaluated after steps 2 and 4');
  const rows = run.metrics.rows();
  const trainRows = rows.filter((r) => typeof r.reward === 'number');
  assert.equal(trainRows.map((r) => r.step), [1, 2, 3, 4]);
  const evalRows = rows.filter((r) => 'eval/reward' in r);
  assert.equal(evalRows.map((r) => r.step), [2, 4]);
  assert.type(evalRows[0]['eval/rewards/even/mean'], 'number');
  run.dispose();
  policy.dispose();
});

test('TR-DPO: the reference moves to alpha x policy + (1 - alpha) x reference every ref_model_sync_steps', async () => {
  const { policy, tokenizer, dir } = await tinyPolicy();
  const reference = await loadQwen3(dir);
  const start = await loadQwen3(dir);
  // mixReference by hand on one tensor.
  const name = 'model.layers.0.self_attn.q_proj.weight';
  const a = reference.namedParameters().get(name)!;
  const run = await trainGrpo({
    policy, tokenizer, rewards: [evenIds], quiet: true, prompts, reference,
    config: { out: path.join(tmp, 'trdpo'), steps: 2, lr: 1e-2, seed: 4, prompts_per_step: 1, num_generations: 3, max_new_tokens: 3, beta: 0.04, sync_ref_model: true, ref_model_mixup_alpha: 0.5, ref_model_sync_steps: 2 },
  });
  // One sync, after step 2: ref = 0.5 policy + 0.5 start.
  const want = tf.tidy(() => policy.namedParameters().get(name)!.mul(0.5).add(start.namedParameters().get(name)!.mul(0.5)));
  const diff = tf.tidy(() => a.sub(want).abs().max().dataSync()[0]);
  const moved = tf.tidy(() => a.sub(start.namedParameters().get(name)!).abs().max().dataSync()[0]);
  assert.ok(diff < 1e-6, `reference after the sync: max |diff| ${diff}`);
  assert.ok(moved > 1e-5, 'the reference moved');
  want.dispose();
  run.dispose();
  for (const m of [policy, reference, start]) m.dispose();
});

test('rollouts from the llama.cpp engine: synced before every generation, its log-probs feed TRL\'s importance-sampling correction (not with top-k)', async () => {
  if (!(await import('node-llama-cpp').then(() => true, () => false))) return console.log('  skipped: node-llama-cpp is not installed');
  const { createLlamaCppEngine } = await import('../../src/rollout/llama_cpp.js');
  const { policy, tokenizer } = await tinyPolicy();
  const engine = await createLlamaCppEngine({ policy, tokenizer, dir: path.join(tmp, 'engine'), threads: 1 });
  let syncs = 0;
  const sync = engine.sync.bind(engine);
  engine.sync = async (p, step) => (syncs++, sync(p, step));
  try {
    const run = await trainGrpo({
      policy, tokenizer, rewards: [evenIds], quiet: true, prompts, engine,
      config: { out: path.join(tmp, 'llama'), steps: 3, lr: 1e-2, seed: 6, prompts_per_step: 1, num_generations: 3, max_new_tokens: 4, importance_sampling_mode: 'token_truncate' },
    });
    const rows = run.metrics.rows().filter((r) => typeof r.reward === 'number');
    assert.is(rows.length, 3);
    assert.is(syncs, 2, 'synced before generations 2 and 3 (the first samples the starting weights)');
    for (const r of rows) {
      assert.is(r['engine/weight_lag_steps'], 0);
      // F32 weights and cache: the engine's log-probs are the trainer's to about 1e-4.
      assert.ok((r['sampling/sampling_logp_difference/mean'] as number) < 1e-3, `logp difference ${r['sampling/sampling_logp_difference/mean']}`);
      const ratio = r['sampling/importance_sampling_ratio/mean'] as number;
      assert.ok(Math.abs(ratio - 1) < 1e-2, `IS ratio ${ratio}`);
    }
    run.dispose();
    // With top-k the engine's log-probs are of the filtered distribution: the correction stays off
    // and the engine is not asked for them.
    const asked: boolean[] = [];
    const generate = engine.generate.bind(engine);
    engine.generate = async (req) => (asked.push(req.logprobs ?? false), generate(req));
    const filtered = await trainGrpo({
      policy, tokenizer, rewards: [evenIds], quiet: true, prompts, engine,
      config: { out: path.join(tmp, 'llama-topk'), steps: 2, lr: 1e-2, seed: 6, prompts_per_step: 1, num_generations: 3, max_new_tokens: 4, top_k: 5 },
    });
    assert.equal(asked, [false, false], 'no log-probs asked for');
    for (const r of filtered.metrics.rows().filter((x) => typeof x.reward === 'number')) assert.is(r['sampling/importance_sampling_ratio/mean'], undefined);
    filtered.dispose();
  } finally {
    await engine.close();
    policy.dispose();
  }
});

// vLLM itself cannot run here (Python, PyTorch, an accelerator): the loopback fixture follows its
// OpenAI-compatible protocol (test/helpers/vllm_fixture.ts).
test('an OpenAI-compatible engine that fails mid-run (server error, malformed reply, hang) stops the trainer naming the step; the last checkpoint stays', async () => {
  const { startVllmFixture } = await import('../helpers/vllm_fixture.js');
  const { createOpenAIEngine } = await import('../../src/rollout/openai.js');
  const { addLora } = await import('../../src/model/lora.js');
  const { latestCheckpoint } = await import('../../src/train/run_state.js');
  const fixture = await startVllmFixture({
    model: 'tiny',
    complete: async (_prompt, body) => Array.from({ length: body.n ?? 1 }, (_, j) => ({ ids: Array.from({ length: body.max_tokens ?? 1 }, (_, t) => 1000 + 7 * j + t), logprobs: Array.from({ length: body.max_tokens ?? 1 }, () => -11.9) })),
  });
  const failures = [
    { route: '/v1/completions', status: 500, body: 'Internal Server Error' },
    { route: '/v1/completions', status: 200, body: { id: 'x', object: 'text_completion', model: 'tiny', choices: [] } },
    { route: '/v1/completions', hang: true },
  ];
  try {
    for (const [k, failure] of failures.entries()) {
      const { policy, tokenizer } = await tinyPolicy();
      addLora(policy, { r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj'], seed: 1 });
      const engine = createOpenAIEngine({ url: fixture.url, model: 'tiny', retries: 0, timeoutMs: 1500, lora: { dir: path.join(tmp, `lora-${k}`) } });
      let generations = 0;
      // After step 2's rollouts the server starts failing: step 3 cannot get its completions.
      const reward: RewardFunction = { name: 'even', score: async (ps, t, ids) => (++generations === 2 && fixture.script.push(failure), evenIds.score(ps, t, ids)) };
      const out = path.join(tmp, `openai-fail-${k}`);
      const err = await trainGrpo({
        policy, tokenizer, rewards: [reward], quiet: true, prompts, engine,
        config: { out, steps: 4, lr: 1e-2, seed: 2, save_every: 1, prompts_per_step: 1, num_generations: 2, max_new_tokens: 3, lora_rank: 2 },
      }).then(() => null, (e: Error) => e);
      assert.ok(err, `failure ${k}: the run stopped`);
      assert.match(err!.message, /^trainGrpo: step 3: openai rollout engine: /, `failure ${k}: ${err!.message}`);
      if (k !== 1) assert.ok(err!.message.includes(fixture.url), `failure ${k} names the URL: ${err!.message}`);
      assert.is(path.basename(latestCheckpoint(out)!), 'step-000002', 'the step-2 checkpoint is the newest, intact');
      await engine.close();
      policy.dispose();
    }
  } finally {
    await fixture.close();
  }
});

test('beta != 0 without a reference policy is refused', async () => {
  const dir = await ensureTinyQwen3(undefined, { log: () => {} });
  const policy = await loadQwen3(dir);
  try {
    await trainGrpo({ policy, tokenizer: loadTokenizer(dir), rewards: [], prompts, config: { out: path.join(tmp, 'x'), steps: 1, lr: 1e-3, beta: 0.04 } });
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /beta != 0 needs a reference policy/);
  }
  policy.dispose();
});

test.run();
