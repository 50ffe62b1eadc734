// promedical train-rm: the criteria-injected reward model (one head per rubric tier) trained on
// per-criterion Bradley-Terry pairs plus a pointwise loss, then judged on held-out records.
import * as path from 'node:path';
import { loadRecords } from '../data/records.js';
import { evaluateJudge } from '../eval/judge.js';
import { addLora } from '../model/lora.js';
import { ensureTinyQwen3 } from '../model/tiny.js';
import { initBackend } from '../ops/backend.js';
import { CriteriaRewardModel } from '../reward/model.js';
import { trainRewardModel } from '../reward/trainer.js';
import { loadPretrained } from '../train/pretrained.js';
import { checkRun, requireFile, requireModelDir, say, trainerInput } from './inputs.js';

const ABOUT = `Trains the criteria-injected reward model (ProMedical's Explicit Criteria Injection): each
(prompt, response, criterion) is one input, one head per tier reads it, and per-criterion
Bradley-Terry pairs plus a pointwise loss train it. Writes <out>/config.json, metrics.jsonl,
chart.svg, checkpoints/ and reward-model/ (CriteriaRewardModel.load reads it), then prints one
JSON line: { run_dir, steps, heldout: { pairwise_accuracy, pointwise_accuracy, safety_veto_* },
reward_model, chart }.`;

export async function trainRm(argv: string[]): Promise<void> {
  const { config: c, help } = trainerInput('reward', 'train-rm', ABOUT, argv);
  if (help) return void console.log(help);
  const log = say('train-rm');
  // Everything is checked before anything is loaded or written.
  requireFile('--data', c.data);
  if (c.eval_data) requireFile('--eval-data', c.eval_data);
  if (c.model) requireModelDir('--model', c.model);
  checkRun('reward', c);

  await initBackend(c.backend);
  const train = await loadRecords(c.data, { format: c.format });
  const heldout = c.eval_data ? await loadRecords(c.eval_data, { format: c.format }) : [];
  const modelDir = c.model ?? (await ensureTinyQwen3());
  const { model: backbone, tokenizer } = await loadPretrained(modelDir);
  backbone.gradientCheckpointing = c.gradient_checkpointing;
  const rm = new CriteriaRewardModel(backbone, tokenizer, { sharedHead: c.shared_head, maxLength: c.max_length, seed: c.seed });
  if (c.lora_rank !== null) addLora(backbone, { r: c.lora_rank, alpha: c.lora_alpha ?? 2 * c.lora_rank, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], seed: c.seed });
  backbone.training = true;

  const { run, evaluation, truncation } = await trainRewardModel({
    rm, train, config: c, evaluate: heldout.length ? (m) => evaluateJudge(m, heldout, c.eval_batch_size) : undefined,
  });
  const { chart } = await run.finish({
    title: `criteria-injected reward model (${c.shared_head ? 'shared head' : 'tier heads'})`,
    metrics: ['loss', 'grad_norm', 'lr', 'eval_pairwise_accuracy', 'eval_pointwise_accuracy', 'eval_safety_veto_f1'],
  });
  backbone.training = false;
  const rmDir = path.join(c.out, 'reward-model');
  await rm.save(rmDir, { baseModel: modelDir });
  log(truncation);
  log(`reward model: ${rmDir}`);
  const e = evaluation ?? {};
  const keys = ['pairwise_accuracy', 'pointwise_accuracy', 'safety_veto_precision', 'safety_veto_recall', 'safety_veto_f1',
    'pairwise_accuracy_proficiency', 'pairwise_accuracy_excellence', 'pairwise_accuracy_safety', 'ranking_accuracy', 'pairs'];
  console.log(JSON.stringify({
    run_dir: c.out, steps: run.step, heldout: evaluation ? Object.fromEntries(keys.map((k) => [k, e[k] ?? null])) : null, reward_model: rmDir, chart,
  }));
  run.dispose();
  rm.dispose();
}
