// The library API behind `promedical train-rm`, in a few lines: train the criteria-injected reward
// model on the bundled records, then score two answers against one record's rubric.
//   npx tsx examples/reward-model.ts [run folder]
import { CriteriaRewardModel, ensureTinyQwen3, loadPretrained, loadRecords, trainRewardModel } from '../src/index.js';

const out = process.argv[2] ?? 'runs/example-rm';
const records = await loadRecords('data/train.jsonl'); // schema v1 JSONL: prompt, criteria, graded responses
const { model, tokenizer } = await loadPretrained(await ensureTinyQwen3()); // or any Hugging Face Qwen3 folder
const rm = new CriteriaRewardModel(model, tokenizer, { maxLength: 384 });

// A RewardConfig: what is not given takes REWARD_CONFIG_DEFAULTS; bad values throw ConfigError.
const { run } = await trainRewardModel({ rm, train: records, config: { out, steps: 20, lr: 2e-3, overwrite: true } });
await run.finish();
run.dispose();

const record = records[0];
const scored = await rm.scoreResponses(record.prompt, ['Call emergency services now.', 'Wait and see.'], record.criteria);
for (const s of scored) console.log(JSON.stringify({ ...s.scores, reward: s.reward }));
await rm.save(`${out}/reward-model`);
rm.dispose();
