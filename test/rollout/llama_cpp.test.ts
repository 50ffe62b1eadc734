// The llama.cpp rollout engine (node-llama-cpp's prebuilt CPU binary, never built): greedy ids
// equal ours on the tied tiny model and on an untied peaky one (also with the repetition
// penalty); the sampled tokens' log-probs (node-llama-cpp's confidence) equal our teacher-forced
// ones at the sampling temperature within 1e-3, and the top-k renormalised ones with top-k on;
// seeds reproduce; after a weight change and a sync (LoRA adapters, full weights) greedy ids equal
// the updated policy's; superseded files are deleted; without node-llama-cpp creation is a clear
// EngineError. Skipped with a message where node-llama-cpp cannot be imported.
// ROLLOUT_BENCH=1 also prints tokens/s of llama.cpp and of tfjs (tiny, T 1, b1 and b8).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadTokenizer, type ChatTokenizer } from '../../src/data/tokenizer.js';
import { qwen3Config, type Qwen3Config } from '../../src/model/config.js';
import { generate } from '../../src/model/generate.js';
import { addLora } from '../../src/model/lora.js';
import { loadQwen3 } from '../../src/model/pretrained.js';
import { Qwen3ForCausalLM } from '../../src/model/qwen3.js';
import { ensureTinyQwen3 } from '../../src/model/tiny.js';
import { EngineError, type RolloutEngine, type RolloutRequest } from '../../src/rollout/engine.js';
import { createLlamaCppEngine } from '../../src/rollout/llama_cpp.js';
import { useBackend } from '../helpers/backends.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-rollout-llama-'));
let tokenizer: ChatTokenizer;
let available = true;
test.before(async () => {
  await useBackend('wasm');
  tokenizer = loadTokenizer();
  try {
    await import('node-llama-cpp');
  } catch {
    available = false;
    console.log('  skipped: node-llama-cpp cannot be imported (npm install node-llama-cpp@3.21.1 runs these checks)');
  }
});
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The peaky model of test/model/gguf.test.ts: the tiny config untied, with heads x headDim !=
 * hidden, and random F32 weights whose matrices are scaled up (the head most), for sharp
 * next-token distributions: greedy runs robust to float noise, with distinct tokens. */
function peakyModel(seed = 4): Qwen3ForCausalLM {
  const config: Qwen3Config = { ...qwen3Config('tiny'), hiddenSize: 48, intermediateSize: 96, numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 16, tieWordEmbeddings: false, torchDtype: 'float32' };
  const model = Qwen3ForCausalLM.random(config, seed);
  const factor = (name: string, rank: number) => (name === 'lm_head.weight' ? 50 : rank === 2 && !name.includes('embed_tokens') ? 20 : 1);
  model.namedParameters().forEach((v, name) => factor(name, v.rank) !== 1 && v.assign(tf.tidy(() => v.mul(factor(name, v.rank)))));
  return model;
}
const tinyModel = async () => loadQwen3(await ensureTinyQwen3(undefined, { log: () => {} }));

const PROMPTS = () => [
  tokenizer.encodeChat([{ role: 'user', content: 'Chest pain 胸痛, what now? 🙂' }], { addGenerationPrompt: true, enableThinking: false }),
  tokenizer.encode('Острый инфаркт'),
];
const request = (over: Partial<RolloutRequest> = {}): RolloutRequest => ({
  prompts: PROMPTS(), numGenerations: 2, maxNewTokens: 8, temperature: 0, stopTokenIds: [], seed: 7, ...over,
});
/** Our greedy continuations, each repeated G times (the engine's layout). */
async function oursGreedy(model: Qwen3ForCausalLM, req: RolloutRequest): Promise<number[][]> {
  const out = await generate(model, req.prompts, { maxNewTokens: req.maxNewTokens, temperature: 0, stopTokenIds: req.stopTokenIds, repetitionPenalty: req.repetitionPenalty });
  return out.flatMap((c) => Array.from({ length: req.numGenerations }, () => c));
}
const engineFor = (policy: Qwen3ForCausalLM, name: string, over: object = {}) =>
  createLlamaCppEngine({ policy, tokenizer, dir: path.join(tmp, name), threads: 1, ...over });
const ggufs = (name: string) => fs.readdirSync(path.join(tmp, name)).filter((f) => f.endsWith('.gguf')).sort();

/** max |engine log p - ours| over every completion token; ours from targetLogProbs at `temperature`. */
function logpGap(model: Qwen3ForCausalLM, req: RolloutRequest, completions: number[][], logprobs: number[][]): number {
  let worst = 0;
  completions.forEach((c, i) => {
    assert.is(logprobs[i].length, c.length, `logprobs ${i} has one value per token`);
    const seq = [...req.prompts[Math.floor(i / req.numGenerations)], ...c];
    const ours = tf.tidy(() => model.targetLogProbs(tf.tensor2d([seq], [1, seq.length], 'int32'), { targets: { lastTokens: c.length }, temperature: req.temperature }).logp.dataSync());
    c.forEach((_, j) => (worst = Math.max(worst, Math.abs(ours[j] - logprobs[i][j]))));
  });
  return worst;
}

test('llama.cpp: by default the context evaluates on as many threads as the machine has cores (node-llama-cpp alone takes at least 4)', async () => {
  if (!available) return;
  const engine = await engineFor(await tinyModel(), 'threads', { threads: undefined });
  try {
    await engine.generate(request({ numGenerations: 1, maxNewTokens: 2 }));
    assert.is(engine.threads, os.availableParallelism());
  } finally {
    await engine.close();
  }
});

test('llama.cpp: greedy ids equal ours on the tied tiny model, also with the repetition penalty; sampled log-probs at T 1', async () => {
  if (!available) return;
  const tiny = await tinyModel();
  const engine = await engineFor(tiny, 'tiny');
  assert.is(engine.name, 'llama.cpp');
  const req = request();
  const greedy = await oursGreedy(tiny, req);
  assert.equal((await engine.generate(req)).completions, greedy);
  // The tiny model repeats itself greedily: the penalty (transformers' semantics) changes that.
  const penalised = request({ repetitionPenalty: 1.8, numGenerations: 1 });
  const want = await oursGreedy(tiny, penalised);
  assert.not.equal(want, greedy.filter((_, i) => i % 2 === 0), 'the penalty changes the output');
  assert.equal((await engine.generate(penalised)).completions, want);
  // Sampled at T 1 with top-p 1: the engine's log-probs are the trainer's.
  const sampled = request({ temperature: 1, numGenerations: 3, logprobs: true, seed: 'tiny' });
  const got = await engine.generate(sampled);
  const gap = logpGap(tiny, sampled, got.completions, got.logprobs!);
  console.log(`  llama.cpp F32 log-probs vs ours, tiny, T1: ${gap.toExponential(1)}`);
  assert.ok(gap < 1e-3, `max |log p diff| ${gap}`);
  await engine.close();
  tiny.dispose();
});

// The next three tests share one engine on the peaky model: greedy, a full-weight sync, then
// sampling on the updated (milder) model.
let peaky: Qwen3ForCausalLM;
let shared: RolloutEngine;

test('llama.cpp: greedy ids equal ours on an untied peaky model; stop tokens cut; the context grows', async () => {
  if (!available) return;
  peaky = peakyModel();
  shared = await engineFor(peaky, 'peaky');
  const req = request();
  const want = await oursGreedy(peaky, req);
  assert.ok(new Set(want[0]).size >= 5, `distinct tokens: ${want[0]}`);
  assert.equal((await shared.generate(req)).completions, want);
  const stop = want[2][2];
  const cut = await shared.generate(request({ stopTokenIds: [stop], numGenerations: 1 }));
  assert.equal(cut.completions[1], want[2].slice(0, want[2].indexOf(stop) + 1), 'through the first stop token');
  const longer = request({ numGenerations: 4, maxNewTokens: 12 });
  assert.equal((await shared.generate(longer)).completions, await oursGreedy(peaky, longer), 'more sequences, longer: a new context');
  assert.equal((await shared.generate(request({ maxNewTokens: 0 }))).completions, [[], [], [], []]);
});

test('llama.cpp: after a full-weight update and a sync, greedy ids equal the updated policy (a new model file)', async () => {
  if (!available) return;
  const req = request({ maxNewTokens: 6, numGenerations: 1 });
  const before = await oursGreedy(peaky, req);
  let seed = 40;
  for (const [name, v] of peaky.namedParameters()) {
    if (name.includes('mlp.') || name.includes('self_attn.o_proj')) v.assign(tf.tidy(() => v.add(tf.randomNormal(v.shape, 0, 1.5, 'float32', ++seed))));
    // A milder head, so that sampling at T 1 (next test) wanders over many tokens.
    if (name === 'lm_head.weight') v.assign(tf.tidy(() => v.mul(0.1)));
  }
  const want = await oursGreedy(peaky, req);
  assert.not.equal(want, before, 'the update changes the output');
  await shared.sync(peaky, 12);
  assert.equal((await shared.generate(req)).completions, want);
  assert.equal(ggufs('peaky'), ['policy-step-12.gguf'], 'the superseded model file is deleted');
});

test('llama.cpp: sampled log-probs equal our teacher-forced ones at T (within 1e-3); top-k renormalised; seeds reproduce', async () => {
  if (!available) return;
  const [model, engine] = [peaky, shared];
  const gaps: Record<string, number> = {};
  for (const temperature of [1, 0.7]) {
    const req = request({ temperature, numGenerations: 3, maxNewTokens: 10, logprobs: true, seed: `t${temperature}` });
    const got = await engine.generate(req);
    assert.equal(got.completions.map((c) => c.length), [10, 10, 10, 10, 10, 10]);
    assert.ok(new Set(got.completions.map((c) => c.join())).size === 6, 'six different samples');
    gaps[`T${temperature}`] = logpGap(model, req, got.completions, got.logprobs!);
    assert.ok(gaps[`T${temperature}`] < 1e-3, `T ${temperature}: max |log p diff| ${gaps[`T${temperature}`]}`);
    const again = await engine.generate(req);
    assert.equal(again.completions, got.completions, 'same seed, same completions');
    assert.not.equal((await engine.generate({ ...req, seed: 'other' })).completions, got.completions);
  }
  // top-k 5: the log-prob is over the 5 kept tokens, renormalised, at the temperature.
  const req = request({ temperature: 0.8, topK: 5, numGenerations: 2, maxNewTokens: 6, logprobs: true });
  const got = await engine.generate(req);
  let worst = 0;
  got.completions.forEach((c, i) => {
    const seq = [...req.prompts[Math.floor(i / 2)], ...c];
    // log softmax over the 5 largest of z / T, at each predicting position, for the sampled token.
    const [values, picked] = tf.tidy(() => {
      const z = model.forward(tf.tensor2d([seq], [1, seq.length], 'int32')).squeeze([0]).slice([seq.length - c.length - 1, 0], [c.length, -1]).div(0.8) as tf.Tensor2D;
      const chosen = tf.gatherND(z, tf.tensor2d(c.flatMap((id, j) => [j, id]), [c.length, 2], 'int32'));
      return [tf.topk(z, 5).values.arraySync() as number[][], chosen.arraySync() as number[]];
    });
    c.forEach((_, j) => {
      const top = values[j];
      assert.ok(picked[j] >= top[4], `token ${c[j]} is in the top 5`);
      const lse = top[0] + Math.log(top.reduce((a, x) => a + Math.exp(x - top[0]), 0));
      worst = Math.max(worst, Math.abs(picked[j] - lse - got.logprobs![i][j]));
    });
  });
  gaps.topK5 = worst;
  assert.ok(worst < 1e-3, `top-k 5: max |log p diff| ${worst}`);
  console.log(`  llama.cpp F32 log-probs vs ours: ${Object.entries(gaps).map(([k, v]) => `${k} ${v.toExponential(1)}`).join(', ')}`);
  await engine.close();
  try {
    await engine.generate(req);
    assert.unreachable('generate after close');
  } catch (err) {
    assert.instance(err, EngineError);
    assert.match((err as Error).message, /^llama\.cpp rollout engine: generate after close\(\)/);
  }
  model.dispose();
});

test('llama.cpp: after a LoRA update and a sync, greedy ids equal the updated policy (a new adapter file per sync)', async () => {
  if (!available) return;
  const model = peakyModel(6);
  addLora(model, { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj'], seed: 2 });
  const engine = await engineFor(model, 'lora', { reloadEvery: 2 });
  assert.equal(ggufs('lora'), ['adapter.gguf', 'policy.gguf']);
  const req = request({ maxNewTokens: 6, numGenerations: 1 });
  assert.equal((await engine.generate(req)).completions, await oursGreedy(model, req), 'fresh adapters (B = 0)');
  let seed = 20;
  let previous = await oursGreedy(model, req);
  for (const step of [1, 2]) {
    for (const a of model.adapters.values()) a.B.assign(tf.tidy(() => a.B.add(tf.randomNormal(a.B.shape, 0, 0.6, 'float32', ++seed))));
    const want = await oursGreedy(model, req);
    assert.not.equal(want, previous, `step ${step}: the update changes the output`);
    await engine.sync(model, step);
    assert.equal((await engine.generate(req)).completions, want, `step ${step}: the engine follows the update`);
    assert.equal(ggufs('lora'), [`adapter-step-${step}.gguf`, 'policy.gguf'], 'superseded adapter files are deleted');
    previous = want;
  }
  await engine.close();
  model.dispose();
});

test('llama.cpp: bad options and a missing node-llama-cpp are EngineErrors (no fallback)', async () => {
  const model = Qwen3ForCausalLM.random({ ...qwen3Config('tiny'), tieWordEmbeddings: false, hiddenSize: 16, intermediateSize: 32, numAttentionHeads: 2, numKeyValueHeads: 1, headDim: 8 }, 1);
  for (const [over, re] of [[{ dtype: 'Q4_0' }, /dtype "Q4_0" is not one of F32, F16, BF16/], [{ kvCache: 'Q8_0' }, /kvCache "Q8_0" is not F32 or F16/], [{ reloadEvery: -1 }, /reloadEvery must be a whole number >= 0/]] as const) {
    try {
      await engineFor(model, 'bad', over);
      assert.unreachable(String(re));
    } catch (err) {
      assert.instance(err, EngineError);
      assert.match((err as Error).message, re);
    }
  }
  model.dispose();
  // A resolve hook hides the package from a child process, as on a machine without it.
  const hooks = path.join(tmp, 'hide-hooks.mjs');
  fs.writeFileSync(hooks, `export async function resolve(s, c, next) { if (s === 'node-llama-cpp') { const e = new Error("Cannot find package 'node-llama-cpp' imported from " + c.parentURL); e.code = 'ERR_MODULE_NOT_FOUND'; throw e; } return next(s, c); }\n`);
  fs.writeFileSync(path.join(tmp, 'hide.mjs'), `import { register } from 'node:module'; register(${JSON.stringify(new URL(`file://${hooks}`).href)});\n`);
  const src = (f: string) => JSON.stringify(new URL(`../../src/${f}`, import.meta.url).href);
  const code = [
    `import * as tf from '@tensorflow/tfjs'; import { Qwen3ForCausalLM } from ${src('model/qwen3.ts')}; import { qwen3Config } from ${src('model/config.ts')};`,
    `import { createLlamaCppEngine } from ${src('rollout/llama_cpp.ts')}; await tf.setBackend('cpu');`,
    `const policy = Qwen3ForCausalLM.random({ ...qwen3Config('tiny'), hiddenSize: 16, intermediateSize: 32, numAttentionHeads: 2, numKeyValueHeads: 1, headDim: 8 }, 1);`,
    `try { await createLlamaCppEngine({ policy, tokenizer: { source: 'unused' }, dir: ${JSON.stringify(path.join(tmp, 'hidden'))} }); console.log('created'); } catch (e) { console.log(e.name + ': ' + e.message); }`,
  ].join('\n');
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', path.join(tmp, 'hide.mjs'), '--input-type=module', '-e', code], { encoding: 'utf8', cwd: path.dirname(new URL(import.meta.url).pathname) });
  assert.is(r.stdout.trim(), 'EngineError: llama.cpp rollout engine: cannot start llama.cpp: node-llama-cpp is not installed; it is an optional peer dependency of promedical: npm install node-llama-cpp@3.21.1', r.stderr);
});

test('llama.cpp vs tfjs speed (ROLLOUT_BENCH=1 only): tokens/s on the tiny model, T 1, b1 and b8', async () => {
  if (!available || process.env.ROLLOUT_BENCH !== '1') return;
  const model = await tinyModel();
  const engine = await engineFor(model, 'bench');
  const prompt = PROMPTS()[0];
  const T = 32;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const G of [1, 8]) {
    const rate: Record<string, number[]> = { 'llama.cpp': [], 'llama.cpp+logprobs': [], tfjs: [] };
    for (let rep = 0; rep < 4; rep++) {
      for (const logprobs of [false, true]) {
        const t = performance.now();
        const r = await engine.generate({ prompts: [prompt], numGenerations: G, maxNewTokens: T, temperature: 1, stopTokenIds: [], seed: rep, logprobs });
        rate[logprobs ? 'llama.cpp+logprobs' : 'llama.cpp'].push((r.completions.flat().length / (performance.now() - t)) * 1000);
      }
      const t = performance.now();
      const o = await generate(model, Array.from({ length: G }, () => prompt), { maxNewTokens: T, temperature: 1, seed: rep });
      rate.tfjs.push((o.flat().length / (performance.now() - t)) * 1000);
    }
    console.log(`  b${G}, ${T} new tokens, median of 4: ${Object.entries(rate).map(([k, v]) => `${k} ${median(v).toFixed(0)} tok/s`).join(', ')}`);
  }
  await engine.close();
  model.dispose();
});

test.run();
