// GRPO guided by the criteria-injected reward model (ProMedical's alignment stage).
//   npm run train-grpo              # policy from the last train-sft run, RM from the last train-rm run
//   npm run train-grpo -- --help
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  addLora, comparePolicies, CriteriaRewardModel, ensureTinyQwen3, evaluatePolicyResponses, initBackend, loadQwen3,
  loadRecords, loadTokenizer, overlongPenalty, policyResponses, rubricReward, saveQwen3, trainGrpo, trainRewardModel, trainSft,
  type RewardFunction,
} from '../src/index.js';

const HELP = `Usage: npm run train-grpo -- [flags]
  --policy DIR          Starting policy, an HF Qwen3 folder (default runs/train-sft/policy; a quick
                        SFT run is trained first when it is missing)
  --rm DIR              Criteria-injected reward model (default runs/train-rm/reward-model; a quick
                        one is trained first when it is missing)
  --data FILE           Records whose prompts and criteria drive training (default data/train.jsonl)
  --eval-data FILE      Held-out records: the policy answers them (greedy) before and after
                        training and the RM judges both (default data/test.jsonl; "" skips)
  --steps N             Optimizer steps (default 40)
  --lr X                Learning rate, constant (default 2e-4)
  --num-generations G   Completions per prompt (default 8)
  --prompts-per-step N  Default 2
  --max-new-tokens N    Default 48
  --temperature X       Default 1.0
  --beta X              KL coefficient (default 0.04, DeepSeekMath); 0 skips the reference policy
  --loss-type NAME      grpo (default), bnpo, dr_grpo, dapo
  --epsilon X           Clip range (default 0.2); --epsilon-high X for DAPO's clip-higher
  --overlong-cache N    Add DAPO's soft overlong penalty with this cache (default off)
  --lora-rank R         Train LoRA adapters; the reference policy is then the adapter-free model
  --seed N              Default 0
  --out DIR             Run folder (default runs/train-grpo); the policy is written to <out>/policy
  --resume              Continue the run in --out
  --gradient-checkpointing  Recompute each policy layer in the backward pass: less memory, ~1/3 slower
  --backend NAME        auto (default), tensorflow, wasm or cpu
Prints one JSON line: { run_dir, steps, reward_first, reward_last, kl_last, curves, heldout }
(first/last = mean over the first/last fifth of the steps; curves: first/last fifth of reward, kl,
entropy and completion length; heldout: RM-judged greedy answers to --eval-data before and after,
with the paired bootstrap interval of each change).`;

const { values: a } = parseArgs({
  options: {
    policy: { type: 'string', default: 'runs/train-sft/policy' },
    rm: { type: 'string', default: 'runs/train-rm/reward-model' },
    data: { type: 'string', default: 'data/train.jsonl' },
    'eval-data': { type: 'string', default: 'data/test.jsonl' },
    steps: { type: 'string', default: '40' },
    lr: { type: 'string', default: '2e-4' },
    'num-generations': { type: 'string', default: '8' },
    'prompts-per-step': { type: 'string', default: '2' },
    'max-new-tokens': { type: 'string', default: '48' },
    temperature: { type: 'string', default: '1.0' },
    beta: { type: 'string', default: '0.04' },
    'loss-type': { type: 'string', default: 'grpo' },
    epsilon: { type: 'string', default: '0.2' },
    'epsilon-high': { type: 'string' },
    'overlong-cache': { type: 'string' },
    'lora-rank': { type: 'string' },
    seed: { type: 'string', default: '0' },
    out: { type: 'string', default: 'runs/train-grpo' },
    resume: { type: 'boolean', default: false },
    'gradient-checkpointing': { type: 'boolean', default: false },
    backend: { type: 'string', default: 'auto' },
    help: { type: 'boolean', default: false },
  },
});
if (a.help) {
  console.log(HELP);
  process.exit(0);
}
const say = (line: string) => process.stderr.write(`[train-grpo] ${line}\n`);
await initBackend(a.backend as 'auto');
const records = await loadRecords(a.data!);
const seed = Number(a.seed);

// The starting points: train quick ones where missing (saying so).
if (!fs.existsSync(path.join(a.rm!, 'reward_config.json'))) {
  say(`no reward model at ${a.rm}: training a quick one (60 steps; npm run train-rm trains the full one)`);
  const dir = await ensureTinyQwen3();
  const rm = new CriteriaRewardModel(await loadQwen3(dir), loadTokenizer(dir), { maxLength: 384, seed });
  const { run } = await trainRewardModel({ rm, train: records, runDir: path.join(path.dirname(a.rm!), 'quick-rm-run'), steps: 60, lr: 2e-3, seed });
  run.dispose();
  await rm.save(a.rm!);
  rm.dispose();
}
if (!fs.existsSync(path.join(a.policy!, 'config.json'))) {
  say(`no SFT policy at ${a.policy}: training a quick one (40 steps; npm run train-sft trains the full one)`);
  const dir = await ensureTinyQwen3();
  const model = await loadQwen3(dir);
  const tok = loadTokenizer(dir);
  const run = await trainSft({ model, tokenizer: tok, records, runDir: path.join(path.dirname(a.policy!), 'quick-sft-run'), steps: 40, lr: 3e-3, seed });
  run.dispose();
  await saveQwen3(model, a.policy!, { dtype: 'float32' });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(dir, f), path.join(a.policy!, f));
  model.dispose();
}

const rm = await CriteriaRewardModel.load(a.rm!);
const policy = await loadQwen3(a.policy!);
policy.gradientCheckpointing = a['gradient-checkpointing']!;
const tokenizer = loadTokenizer(fs.existsSync(path.join(a.policy!, 'tokenizer.json')) ? a.policy : undefined);
const beta = Number(a.beta);
let reference: 'adapters' | Awaited<ReturnType<typeof loadQwen3>> | undefined;
if (a['lora-rank']) {
  addLora(policy, { r: Number(a['lora-rank']), alpha: 2 * Number(a['lora-rank']), targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], seed });
  reference = 'adapters';
} else if (beta !== 0) {
  reference = await loadQwen3(a.policy!); // a frozen copy
}
const rewards: RewardFunction[] = [rubricReward(rm)];
if (a['overlong-cache']) rewards.push(overlongPenalty(Number(a['max-new-tokens']), Number(a['overlong-cache'])));
const heldout = a['eval-data'] ? await loadRecords(a['eval-data']) : [];
const judge = async () => evaluatePolicyResponses(rm, heldout, await policyResponses(policy, tokenizer, heldout, { maxNewTokens: Number(a['max-new-tokens']) }), seed);
const before = heldout.length ? await judge() : null;
const steps = Number(a.steps);
const run = await trainGrpo({
  policy, tokenizer, rewards, reference, runDir: a.out!, steps, lr: Number(a.lr), seed, resume: a.resume,
  prompts: records.map((r) => ({ id: r.id, messages: r.prompt, context: r })),
  promptsPerStep: Number(a['prompts-per-step']), numGenerations: Number(a['num-generations']), maxNewTokens: Number(a['max-new-tokens']),
  temperature: Number(a.temperature), topK: 50, beta, lossType: a['loss-type'] as 'grpo', epsilon: Number(a.epsilon),
  epsilonHigh: a['epsilon-high'] ? Number(a['epsilon-high']) : undefined, saveEvery: Math.max(1, Math.round(steps / 3)),
  config: { ...a, help: undefined },
});
const { chart } = await run.finish({ title: 'GRPO guided by the criteria-injected reward model', metrics: ['reward', 'reward_std', 'kl', 'entropy', 'completions/mean_length', 'clip_ratio/region_mean', 'loss'] });
const out = path.join(a.out!, 'policy');
await saveQwen3(policy, out, { dtype: 'float32' });
const after = heldout.length ? await judge() : null;
let heldoutSummary: Record<string, unknown> | null = null;
if (before && after) {
  const c = comparePolicies(after, before, seed);
  heldoutSummary = Object.fromEntries(
    (['reward', 'overall_accuracy', 'safety_compliance'] as const).flatMap((m) => [[`${m}_before`, c[m].b], [`${m}_after`, c[m].a], [`${m}_change`, c[m].difference]]),
  );
}
const rows = run.metrics.rows().filter((r) => typeof r.reward === 'number');
const fifth = Math.max(1, Math.floor(rows.length / 5));
const mean = (xs: typeof rows, k: string) => xs.reduce((s, r) => s + (r[k] as number), 0) / xs.length;
const curves = Object.fromEntries(['reward', 'kl', 'entropy', 'completions/mean_length'].filter((k) => rows.every((r) => typeof r[k] === 'number')).map((k) => [k, { first: mean(rows.slice(0, fifth), k), last: mean(rows.slice(-fifth), k) }]));
console.log(JSON.stringify({ run_dir: a.out, steps: run.step, reward_first: mean(rows.slice(0, fifth), 'reward'), reward_last: mean(rows.slice(-fifth), 'reward'), kl_last: rows.at(-1)?.kl ?? null, curves, heldout: heldoutSummary, policy: out, chart }));
run.dispose();
