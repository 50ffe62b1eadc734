// GRPO with your own reward function next to (or instead of) the reward model: here a rule that
// rewards answers which point to a clinician. The same trainer runs `promedical train-grpo`.
//   npx tsx examples/grpo-custom-reward.ts [run folder]
import { ensureTinyQwen3, loadPretrained, loadRecords, trainGrpo, type RewardFunction } from '../src/index.js';

const out = process.argv[2] ?? 'runs/example-grpo';
const records = await loadRecords('data/train.jsonl');
const dir = await ensureTinyQwen3();
const { model: policy, tokenizer } = await loadPretrained(dir);
const reference = (await loadPretrained(dir)).model; // frozen: the KL term pulls towards it

const seeAClinician: RewardFunction = {
  name: 'see_a_clinician',
  score: async (_prompts, completions) => completions.map((text) => (/doctor|clinician|emergency/i.test(text) ? 1 : 0)),
};

// A GrpoConfig: TRL's names in snake_case; what is not given takes GRPO_CONFIG_DEFAULTS (TRL 1.10's
// GRPOConfig: loss dapo, beta 0, lr 1e-6, ...). A tiny random model needs a far larger lr.
const run = await trainGrpo({
  policy, tokenizer, reference, rewards: [seeAClinician],
  prompts: records.map((r) => ({ id: r.id, messages: r.prompt, context: r })),
  config: { out, steps: 4, lr: 2e-4, num_generations: 4, prompts_per_step: 2, max_new_tokens: 16, beta: 0.04, entropy_coef: 0.01, overwrite: true },
});
const { chart } = await run.finish();
console.log(JSON.stringify({ steps: run.step, last: run.metrics.rows().at(-1), chart }));
run.dispose();
