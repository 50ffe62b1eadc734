// Supervised fine-tuning (warm start for GRPO): next-token loss on the bundled training responses
// only (prompt tokens masked), TRL SFTTrainer semantics.
//   npm run train-sft            # tiny Qwen3, bundled data, this machine
//   npm run train-sft -- --help
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { ensureTinyQwen3, generate, initBackend, loadQwen3, loadRecords, loadTokenizer, saveQwen3, trainSft } from '../src/index.js';

const HELP = `Usage: npm run train-sft -- [flags]
  --model DIR       Hugging Face Qwen3 folder (default: the bundled tiny Qwen3)
  --data FILE       Records whose responses are imitated (default data/train.jsonl)
  --responses WHICH all (mixed quality, default) or best (the best-graded response per record)
  --steps N         Optimizer steps (default 80)
  --lr X            Peak learning rate, cosine schedule (default 1e-2)
  --batch-size N    Sequences per step (default 8)
  --max-length N    Longest prompt + response in tokens (default 256)
  --seed N          Default 0
  --out DIR         Run folder (default runs/train-sft); the policy is written to <out>/policy
  --resume          Continue the run in --out
  --gradient-checkpointing  Recompute each layer in the backward pass: less memory, ~1/3 slower
  --backend NAME    auto (default), tensorflow, wasm or cpu
Prints one JSON line: { run_dir, steps, loss_first, loss_last, policy, sample }.`;

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    data: { type: 'string', default: 'data/train.jsonl' },
    responses: { type: 'string', default: 'all' },
    steps: { type: 'string', default: '80' },
    lr: { type: 'string', default: '1e-2' },
    'batch-size': { type: 'string', default: '8' },
    'max-length': { type: 'string', default: '256' },
    seed: { type: 'string', default: '0' },
    out: { type: 'string', default: 'runs/train-sft' },
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
await initBackend(a.backend as 'auto');
const modelDir = a.model ?? (await ensureTinyQwen3());
const records = await loadRecords(a.data!);
const model = await loadQwen3(modelDir);
model.gradientCheckpointing = a['gradient-checkpointing']!;
const tok = loadTokenizer(fs.existsSync(path.join(modelDir, 'tokenizer.json')) ? modelDir : undefined);
const steps = Number(a.steps);
const run = await trainSft({
  model, tokenizer: tok, records, responses: a.responses as 'all', runDir: a.out!, steps, lr: Number(a.lr),
  batchSize: Number(a['batch-size']), maxLength: Number(a['max-length']), seed: Number(a.seed), resume: a.resume,
  saveEvery: Math.max(1, Math.round(steps / 3)),
  config: { model: modelDir, data: a.data, responses: a.responses, steps, lr: Number(a.lr), batch_size: Number(a['batch-size']), gradient_checkpointing: a['gradient-checkpointing'], seed: Number(a.seed) },
});
const { chart } = await run.finish({ title: 'SFT warm start', metrics: ['loss', 'grad_norm', 'lr'] });
const policy = path.join(a.out!, 'policy');
await saveQwen3(model, policy, { dtype: 'float32' });
for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
  const src = path.join(path.dirname(tok.source), f);
  if (fs.existsSync(src)) fs.copyFileSync(src, path.join(policy, f));
}
const rows = run.metrics.rows().filter((r) => typeof r.loss === 'number');
const fifth = Math.max(1, Math.floor(rows.length / 5));
const mean = (xs: typeof rows) => xs.reduce((s, r) => s + (r.loss as number), 0) / xs.length;
const prompt = tok.encodeChat(records[0].prompt, { addGenerationPrompt: true, enableThinking: false });
const [sample] = await generate(model, [prompt], { maxNewTokens: 60, temperature: 0.7, topP: 0.8, topK: 20, seed: 0, stopTokenIds: tok.stopTokenIds });
console.log(JSON.stringify({ run_dir: a.out, steps: run.step, loss_first: mean(rows.slice(0, fifth)), loss_last: mean(rows.slice(-fifth)), policy, chart, sample: tok.decode(sample.filter((id) => id < tok.vocabSize), { skipSpecialTokens: true }) }));
run.dispose();
