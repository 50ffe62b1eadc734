// The OpenAI-compatible rollout engine against a loopback server that follows vLLM's protocol
// (test/helpers/vllm_fixture.ts; vLLM itself cannot run here) and samples from our tfjs tiny
// model: batched token-id prompts with n, mapped back through choices[].index; chunks under the
// concurrency bound; log-probs; the stop-token cut; LoRA sync (a valid PEFT folder per step,
// unload of the previous adapter, load of the new one, requests under its name, greedy ids of the
// updated policy); retries after 500 / 429, none after 400; a hang times out; malformed replies and
// network errors are EngineErrors naming the URL and what is wrong.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { generate } from '../../src/model/generate.js';
import { addLora, loadLora, withAdaptersDisabled } from '../../src/model/lora.js';
import { loadQwen3 } from '../../src/model/pretrained.js';
import type { Qwen3ForCausalLM } from '../../src/model/qwen3.js';
import { ensureTinyQwen3 } from '../../src/model/tiny.js';
import { cutAtStop, derivedSeed, EngineError, type RolloutRequest } from '../../src/rollout/engine.js';
import { createOpenAIEngine, type OpenAIEngineOptions } from '../../src/rollout/openai.js';
import { useBackend } from '../helpers/backends.js';
import { startVllmFixture, type CompletionBody, type RawCompletion, type VllmFixture } from '../helpers/vllm_fixture.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-rollout-openai-'));
const MODEL = 'Qwen/Qwen3-tiny';
let server: Qwen3ForCausalLM; // the fixture's model
let fixture: VllmFixture;
/** What the fixture generated: seed -> prompt index in the request -> its n raw completions. */
const generated = new Map<number, RawCompletion[][]>();

/** The server side: our generate with the request's settings, log-probs teacher-forced at T. */
async function complete(prompt: number[], body: CompletionBody, model: string, p: number): Promise<RawCompletion[]> {
  const n = body.n ?? 1;
  const temperature = body.temperature ?? 1;
  const run = () => generate(server, Array.from({ length: n }, () => prompt), {
    maxNewTokens: body.max_tokens ?? 16, temperature, topP: body.top_p, topK: (body.top_k ?? -1) > 0 ? body.top_k : 0, minP: body.min_p,
    repetitionPenalty: body.repetition_penalty, seed: `${body.seed}:${p}`,
  });
  const adapted = model !== MODEL;
  const ids = adapted ? await run() : await withAdaptersDisabled(server, run);
  const outs = ids.map((c) => {
    const seq = [...prompt, ...c];
    const logp = () => tf.tidy(() => Array.from(server.targetLogProbs(tf.tensor2d([seq], [1, seq.length], 'int32'), { targets: { lastTokens: c.length }, temperature: temperature || 1 }).logp.dataSync()));
    return { ids: c, logprobs: adapted ? logp() : withAdaptersDisabled(server, logp) };
  });
  if (body.seed !== undefined) {
    const bySeed = generated.get(body.seed) ?? [];
    bySeed[p] = outs;
    generated.set(body.seed, bySeed);
  }
  return outs;
}

test.before(async () => {
  await useBackend('wasm');
  const dir = await ensureTinyQwen3(undefined, { log: () => {} });
  server = await loadQwen3(dir);
  fixture = await startVllmFixture({
    model: MODEL,
    complete,
    delayMs: 20,
    onLoad: (_, p) => {
      for (const a of server.adapters.values()) tf.dispose([a.A, a.B]);
      server.adapters.clear();
      loadLora(server, p);
    },
  });
});
test.after(async () => {
  await fixture.close();
  server.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const PROMPTS = [[9707, 11, 1879, 0], [5, 17, 60, 2, 33, 90, 151644], [100, 200, 300], [7, 7, 7, 7, 7], [42, 4242]];
const request = (over: Partial<RolloutRequest> = {}): RolloutRequest => ({
  prompts: PROMPTS.slice(0, 2), numGenerations: 2, maxNewTokens: 6, temperature: 0, stopTokenIds: [151645, 151643], seed: 'o', ...over,
});
const engineFor = (over: Partial<OpenAIEngineOptions> = {}) => createOpenAIEngine({ url: fixture.url, model: MODEL, retryDelayMs: 5, ...over });
const completionBodies = (from = 0) => fixture.requests.slice(from).filter((r) => r.route === '/v1/completions').map((r) => r.body as CompletionBody);

async function rejects(p: Promise<unknown>, re: RegExp): Promise<EngineError> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, EngineError, String(err));
    assert.match((err as Error).message, re);
    return err as EngineError;
  }
  throw new assert.Assertion({ message: `expected an EngineError matching ${re}`, operator: 'rejects', expects: re, actual: 'resolved', generated: false });
}

test('openai: batched prompts with n in chunks under the concurrency bound; choices mapped by index; log-probs', async () => {
  const engine = engineFor({ concurrency: 2, promptsPerRequest: 2 });
  assert.is(engine.name, 'openai');
  const from = fixture.requests.length;
  const req = request({ prompts: PROMPTS, numGenerations: 3, temperature: 1, logprobs: true, seed: 'batch' });
  const got = await engine.generate(req);
  const bodies = completionBodies(from);
  assert.equal(bodies.map((b) => b.prompt), [PROMPTS.slice(0, 2), PROMPTS.slice(2, 4), PROMPTS.slice(4)], 'token-id prompts, two per request');
  // The bound is the property; whether two really overlap depends on the machine's load.
  assert.ok(fixture.maxInFlight >= 1 && fixture.maxInFlight <= 2, `at most \`concurrency\` requests in flight, saw ${fixture.maxInFlight}`);
  const { prompt: _, seed, ...rest } = bodies[0];
  assert.equal(rest, {
    model: MODEL, n: 3, max_tokens: 6, temperature: 1, top_p: 1, top_k: -1, min_p: 0, repetition_penalty: 1, stop_token_ids: [151645, 151643],
    skip_special_tokens: false, include_stop_str_in_output: true, return_token_ids: true, return_tokens_as_token_ids: true, stream: false, logprobs: 1,
  });
  assert.equal(bodies.map((b) => b.seed), [0, 2, 4].map((start) => derivedSeed('batch', start)), 'a seed per chunk, from the request seed');
  assert.ok(Number.isInteger(seed));
  // Completion i is the fixture's completion i % 3 of prompt i / 3, in the prompts' order.
  const stops = new Set(req.stopTokenIds);
  const want = PROMPTS.flatMap((_, p) => generated.get(derivedSeed('batch', p - (p % 2)))![p % 2]);
  assert.equal(got.completions, want.map((o) => cutAtStop(o.ids, stops)));
  assert.equal(got.logprobs, want.map((o, i) => o.logprobs.slice(0, got.completions[i].length)));
  assert.ok(new Set(got.completions.map((c) => c.join())).size > 10, 'sampled completions differ');
  assert.equal((await engine.generate(req)).completions, got.completions, 'same seed, same completions');
  // Greedy: the server's model is ours, so its completions are our greedy ones.
  const greedy = await engine.generate(request({ prompts: PROMPTS.slice(0, 3) }));
  const ours = await generate(server, PROMPTS.slice(0, 3), { maxNewTokens: 6, stopTokenIds: [151645, 151643] });
  assert.equal(greedy.completions, ours.flatMap((c) => [c, c]));
  assert.is(greedy.logprobs, undefined);
  assert.equal((await engine.generate(request({ maxNewTokens: 0 }))).completions, [[], [], [], []], 'max_tokens 0: nothing sent');
  await engine.close();
});

test('openai: LoRA sync writes a PEFT adapter per step, unloads the previous one, loads the new one and samples from it', async () => {
  const policy = await loadQwen3(await ensureTinyQwen3(undefined, { log: () => {} }));
  addLora(policy, { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'], seed: 3 });
  const loraDir = path.join(tmp, 'lora');
  const engine = engineFor({ lora: { dir: loraDir, name: 'pol' } });
  const req = request({ numGenerations: 1, maxNewTokens: 5 });
  const baseGreedy = await withAdaptersDisabled(policy, () => generate(policy, req.prompts, { maxNewTokens: 5, stopTokenIds: req.stopTokenIds }));
  let seed = 30;
  const update = () => {
    for (const a of policy.adapters.values()) a.B.assign(tf.tidy(() => a.B.add(tf.randomNormal(a.B.shape, 0, 2, 'float32', ++seed))));
  };
  for (const step of [3, 4]) {
    update();
    const from = fixture.requests.length;
    await engine.sync(policy, step);
    const calls = fixture.requests.slice(from).map((r) => [r.route, r.body]);
    const load = ['/v1/load_lora_adapter', { lora_name: `pol-step-${step}`, lora_path: path.join(loraDir, `step-${step}`) }];
    assert.equal(calls, step === 3 ? [load] : [['/v1/unload_lora_adapter', { lora_name: 'pol-step-3' }], load]);
    assert.equal([...fixture.adapters.keys()], [`pol-step-${step}`]);
    assert.equal(fs.readdirSync(loraDir), [`step-${step}`], 'the previous adapter folder is deleted');
    // A valid PEFT adapter: its config, and tensors that load back to the policy's.
    const folder = path.join(loraDir, `step-${step}`);
    const cfg = JSON.parse(fs.readFileSync(path.join(folder, 'adapter_config.json'), 'utf8'));
    assert.equal([cfg.peft_type, cfg.r, cfg.lora_alpha, [...cfg.target_modules].sort(), cfg.base_model_name_or_path, cfg.task_type], ['LORA', 4, 8, ['down_proj', 'q_proj', 'v_proj'], MODEL, 'CAUSAL_LM']);
    for (const [module, a] of policy.adapters) {
      const back = server.adapters.get(module)!;
      assert.equal(Array.from(back.A.dataSync()), Array.from(a.A.dataSync()), `${module} A`);
      assert.equal(Array.from(back.B.dataSync()), Array.from(a.B.dataSync()), `${module} B`);
      assert.is(back.scale, a.scale);
    }
    const from2 = fixture.requests.length;
    const got = await engine.generate(req);
    assert.is(completionBodies(from2)[0].model, `pol-step-${step}`, 'requests name the adapter');
    const want = await generate(policy, req.prompts, { maxNewTokens: 5, stopTokenIds: req.stopTokenIds });
    assert.equal(got.completions, want, `step ${step}: greedy ids of the updated policy`);
    assert.not.equal(got.completions, baseGreedy, 'which the adapters changed');
  }
  // The previous adapter already gone on the server (404): ignored.
  fixture.script.push({ route: '/v1/unload_lora_adapter', status: 404, body: { error: { message: 'gone', type: 'NotFoundError', param: null, code: 404 } } });
  update();
  await engine.sync(policy, 5);
  assert.equal([...fixture.adapters.keys()], ['pol-step-4', 'pol-step-5'], 'step 4 was not unloaded (404), step 5 loaded');
  fixture.adapters.delete('pol-step-4');
  await engine.close();
  assert.equal([...fixture.adapters.keys()], [], 'close unloads the adapter');
  for (const a of server.adapters.values()) tf.dispose([a.A, a.B]);
  server.adapters.clear();
  await rejects(engine.generate(req), /^openai rollout engine: generate after close\(\)/);

  // Full fine-tuning goes through the caller's hook; without one (or lora for adapters) sync fails.
  const seen: number[] = [];
  const hooked = engineFor({ syncWeights: async (p, step) => void seen.push(step, p === policy ? 1 : 0) });
  await hooked.sync(policy, 9);
  assert.equal(seen, [9, 1]);
  await rejects(engineFor().sync(policy, 2), /the policy changed \(step 2\) but the server cannot follow: give opts\.lora .* or opts\.syncWeights/);
  policy.dispose();
});

test('openai: retries after 500 and 429 (then succeeds), not after 400; network errors retry and then name the URL', async () => {
  const engine = engineFor({ retries: 3 });
  fixture.script.push({ route: '/v1/completions', status: 500, body: 'Internal Server Error' }, { route: '/v1/completions', status: 429, body: 'slow down', headers: { 'retry-after': '0' } });
  const single = request({ prompts: [PROMPTS[0]] });
  let from = fixture.requests.length;
  const got = await engine.generate(single);
  assert.is(completionBodies(from).length, 3, 'two failures, then the answer');
  assert.equal(got.completions, (await engine.generate(single)).completions);

  fixture.script.push({ route: '/v1/completions', status: 400, body: { error: { message: "max_tokens must be at least 1, got 0.", type: 'BadRequestError', param: 'max_tokens', code: 400 } } });
  from = fixture.requests.length;
  const err = await rejects(engine.generate(single), /POST http:\/\/127\.0\.0\.1:\d+\/v1\/completions answered HTTP 400: \{"error":\{"message":"max_tokens must be at least 1, got 0\."/);
  assert.is(err.status, 400);
  assert.is(err.url, `${fixture.url}/v1/completions`);
  assert.is(completionBodies(from).length, 1, 'no retry after a 400');

  fixture.script.push(...Array.from({ length: 2 }, () => ({ route: '/v1/completions', status: 503, body: 'overloaded' })));
  await rejects(engineFor({ retries: 1 }).generate(single), /answered HTTP 503: overloaded \(2 attempts\)/);

  const closed = createOpenAIEngine({ url: 'http://127.0.0.1:9/', model: MODEL, retries: 1, retryDelayMs: 5 });
  const net = await rejects(closed.generate(request()), /^openai rollout engine: POST http:\/\/127\.0\.0\.1:9\/v1\/completions failed: .*\(2 attempts\)$/);
  assert.is(net.status, undefined);
});

test('openai: a hang times out with an EngineError naming the URL', async () => {
  const engine = engineFor({ timeoutMs: 300, retries: 0 });
  fixture.script.push({ route: '/v1/completions', hang: true });
  const t = performance.now();
  const err = await rejects(engine.generate(request()), /^openai rollout engine: POST http:\/\/127\.0\.0\.1:\d+\/v1\/completions timed out after 300 ms$/);
  assert.ok(performance.now() - t < 3000);
  assert.is(err.url, `${fixture.url}/v1/completions`);
});

test('openai: malformed replies are EngineErrors naming what is wrong; bad options too', async () => {
  const engine = engineFor({ retries: 0 });
  const choice = (index: number, ids: unknown, lp?: unknown) => ({ index, text: '', token_ids: ids, ...(lp === undefined ? {} : { logprobs: { token_logprobs: lp } }) });
  const two = (a: object, b: object) => ({ choices: [a, b] });
  const one = { prompts: [PROMPTS[0]], numGenerations: 2 };
  for (const [body, re, over] of [
    [{}, /malformed reply: no "choices" array/, one],
    ['NaN', /the reply is not a JSON object: NaN/, one],
    [{ choices: [choice(0, [1])] }, /1 choices for 1 prompts x n 2 \(2 expected\)/, one],
    [two(choice(0, [1]), choice(0, [2])), /choice index 0 appears twice/, one],
    [two(choice(0, [1]), choice(2, [2])), /choice index 2 is not an integer in \[0, 2\)/, one],
    [two(choice(0, [1, 2.5]), choice(1, [2])), /choice 0 holds token id 2\.5, not a non-negative integer/, one],
    [two(choice(0, null), choice(1, [2])), /choice 0 has no token_ids \(vLLM's return_token_ids\)/, one],
    [two(choice(0, [1, 2, 3, 4, 5, 6, 7]), choice(1, [2])), /choice 0 has 7 tokens, more than max_tokens 6/, one],
    [two(choice(0, [1], [-0.5]), choice(1, [2], [null])), /choice 1 logprob 0 is null, not a finite log-probability/, { ...one, logprobs: true }],
    [two(choice(0, [1], [-0.5]), choice(1, [2, 3], [-1])), /choice 1 has 1 logprobs for 2 tokens/, { ...one, logprobs: true }],
    [two(choice(0, [1]), { index: 1, token_ids: [2], logprobs: { tokens: ['token_id:3'], token_logprobs: [-1] } }), /choice 1: token_ids and the logprob tokens disagree/, one],
  ] as [unknown, RegExp, Partial<RolloutRequest>][]) {
    fixture.script.push({ route: '/v1/completions', body });
    const err = await rejects(engine.generate(request(over)), re);
    assert.match(err.message, new RegExp(`POST ${fixture.url.replace(/\./g, '\\.')}/v1/completions`), 'names the URL');
  }
  // Ids read from "token_id:N" logprob tokens when the server has no token_ids field.
  fixture.script.push({ route: '/v1/completions', body: two({ index: 1, logprobs: { tokens: ['token_id:8', 'token_id:9'], token_logprobs: [-1, -2] } }, { index: 0, logprobs: { tokens: ['token_id:5'], token_logprobs: [-3] } }) });
  assert.equal(await engine.generate(request({ ...one, logprobs: true })), { completions: [[5], [8, 9]], logprobs: [[-3], [-1, -2]] });
  assert.throws(() => createOpenAIEngine({ url: 'localhost:8000', model: MODEL }), /url must be an http\(s\) URL, got "localhost:8000"/);
  assert.throws(() => createOpenAIEngine({ url: fixture.url, model: '' }), /model \(the served model name\) is required/);
  assert.throws(() => createOpenAIEngine({ url: fixture.url, model: MODEL, concurrency: 0 }), /concurrency must be a whole number >= 1, got 0/);
  await rejects(engine.generate(request({ numGenerations: 0 })), /bad request: numGenerations must be a positive integer/);
});

test.run();
