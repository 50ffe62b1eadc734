// promedical train-sft: supervised fine-tuning with the completion-only loss (the GRPO warm start).
import * as path from 'node:path';
import { loadRecords } from '../data/records.js';
import { generate } from '../model/generate.js';
import { saveQwen3 } from '../model/pretrained.js';
import { ensureTinyQwen3 } from '../model/tiny.js';
import { initBackend } from '../ops/backend.js';
import { curveSummary } from '../train/metrics.js';
import { loadPretrained } from '../train/pretrained.js';
import { trainSft } from '../train/sft.js';
import { checkRun, requireFile, requireModelDir, trainerInput } from './inputs.js';

const ABOUT = `Supervised fine-tuning (TRL SFTTrainer's completion-only loss: prompt tokens are masked) on
the records' responses: the warm start of a GRPO policy. Writes <out>/config.json, metrics.jsonl,
chart.svg, checkpoints/ and policy/ (a Hugging Face Qwen3 folder with its tokenizer), then prints
one JSON line: { run_dir, steps, loss_first, loss_last, policy, chart, sample } (first/last: mean
loss over the first/last fifth of the steps; sample: a sampled answer to the first prompt).`;

export async function trainSftCommand(argv: string[]): Promise<void> {
  const { config: c, help } = trainerInput('sft', 'train-sft', ABOUT, argv);
  if (help) return void console.log(help);
  requireFile('--data', c.data);
  if (c.model) requireModelDir('--model', c.model);
  checkRun('sft', c);

  await initBackend(c.backend);
  const records = await loadRecords(c.data, { format: c.format });
  const { model, tokenizer } = await loadPretrained(c.model ?? (await ensureTinyQwen3()));
  model.gradientCheckpointing = c.gradient_checkpointing;
  const run = await trainSft({ model, tokenizer, records, config: c });
  const { chart } = await run.finish({ title: 'SFT warm start', metrics: ['loss', 'grad_norm', 'lr'] });
  const policy = path.join(c.out, 'policy');
  await saveQwen3(model, policy, { dtype: 'float32', tokenizer });
  const loss = curveSummary(run.metrics.rows(), ['loss']).loss;
  const prompt = tokenizer.encodeChat(records[0].prompt, { addGenerationPrompt: true, enableThinking: false });
  const [sample] = await generate(model, [prompt], { maxNewTokens: 60, temperature: 0.7, topP: 0.8, topK: 20, seed: 0, stopTokenIds: tokenizer.stopTokenIds });
  const text = tokenizer.decode(sample.filter((id) => id < tokenizer.vocabSize), { skipSpecialTokens: true });
  console.log(JSON.stringify({ run_dir: c.out, steps: run.step, loss_first: loss.first, loss_last: loss.last, policy, chart, sample: text }));
  run.dispose();
  model.dispose();
}
