// Train the criteria-injected reward model (ProMedical's Explicit Criteria Injection).
//   npm run train-rm                      # bundled data, bundled tiny Qwen3, this machine
//   npm run train-rm -- --help
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  addLora,
  CriteriaRewardModel,
  ensureTinyQwen3,
  evaluateJudge,
  initBackend,
  loadQwen3,
  loadRecords,
  loadTokenizer,
  trainRewardModel,
} from '../src/index.js';

const HELP = `Train the criteria-injected reward model (one head per rubric tier) with per-criterion
Bradley-Terry pairs plus a pointwise loss, then report held-out judge metrics.

Usage: npm run train-rm -- [flags]

  --model DIR        Hugging Face Qwen3 folder (config.json + safetensors + tokenizer files).
                     Default: the bundled tiny Qwen3 (weights/qwen3-tiny, written on first use).
  --data FILE        Training records, schema v1 JSONL (default data/train.jsonl).
  --eval-data FILE   Held-out records (default data/test.jsonl; never trained on).
  --format NAME      Format of --data and --eval-data (promedical, healthbench, kqa, kqa-nli, rar).
  --steps N          Optimizer steps (default 120).
  --lr X             Peak learning rate, cosine schedule with 10% warmup (default 2e-3).
  --batch-size N     Criterion pairs per step (default 16).
  --max-length N     Longest ECI input in tokens; responses are cut first (default 384).
  --lora-rank R      Train LoRA adapters (q,k,v,o) of rank R instead of the whole backbone.
  --shared-head      One head for all tiers (the ablation of the tier heads).
  --gradient-checkpointing  Recompute each layer in the backward pass: less memory, ~1/3 slower.
  --seed N           Seed of initialisation and data order (default 0).
  --eval-every N     Evaluate on --eval-data every N steps (default 40).
  --out DIR          Run folder (default runs/train-rm).
  --resume           Continue the run in --out from its last checkpoint up to --steps.
  --backend NAME     auto (default), tensorflow, wasm or cpu.
  --help             This text.

Writes <out>/metrics.jsonl, <out>/chart.svg, <out>/checkpoints/, <out>/reward-model/ (load it with
CriteriaRewardModel.load) and prints one JSON line: { run_dir, steps, heldout: {...} }.`;

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    data: { type: 'string', default: 'data/train.jsonl' },
    'eval-data': { type: 'string', default: 'data/test.jsonl' },
    format: { type: 'string', default: 'promedical' },
    steps: { type: 'string', default: '120' },
    lr: { type: 'string', default: '2e-3' },
    'batch-size': { type: 'string', default: '16' },
    'max-length': { type: 'string', default: '384' },
    'lora-rank': { type: 'string' },
    'shared-head': { type: 'boolean', default: false },
    'gradient-checkpointing': { type: 'boolean', default: false },
    seed: { type: 'string', default: '0' },
    'eval-every': { type: 'string', default: '40' },
    out: { type: 'string', default: 'runs/train-rm' },
    resume: { type: 'boolean', default: false },
    backend: { type: 'string', default: 'auto' },
    help: { type: 'boolean', default: false },
  },
});
if (a.help) {
  console.log(HELP);
  process.exit(0);
}
const num = (name: keyof typeof a) => {
  const v = Number(a[name]);
  if (!Number.isFinite(v)) throw new Error(`--${String(name)} must be a number, got ${a[name]}`);
  return v;
};

await initBackend(a.backend as 'auto');
const modelDir = a.model ?? (await ensureTinyQwen3());
const format = a.format as 'promedical';
const train = await loadRecords(a.data!, { format });
const heldout = await loadRecords(a['eval-data']!, { format });
const backbone = await loadQwen3(modelDir);
backbone.gradientCheckpointing = a['gradient-checkpointing']!;
const tokenizer = loadTokenizer(fs.existsSync(path.join(modelDir, 'tokenizer.json')) ? modelDir : undefined);
const seed = num('seed');
const rm = new CriteriaRewardModel(backbone, tokenizer, { sharedHead: a['shared-head'], maxLength: num('max-length'), seed });
if (a['lora-rank']) addLora(backbone, { r: num('lora-rank'), alpha: 2 * num('lora-rank'), targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], seed });
backbone.training = true;

const config = { model: modelDir, data: a.data, eval_data: a['eval-data'], format, steps: num('steps'), lr: num('lr'), batch_size: num('batch-size'), max_length: num('max-length'), lora_rank: a['lora-rank'] ? num('lora-rank') : null, shared_head: a['shared-head'], gradient_checkpointing: a['gradient-checkpointing'], seed };
const { run, evaluation, truncation } = await trainRewardModel({
  rm,
  train,
  runDir: a.out!,
  steps: num('steps'),
  lr: num('lr'),
  batchSize: num('batch-size'),
  seed,
  evalEvery: num('eval-every'),
  saveEvery: Math.max(1, Math.round(num('steps') / 4)),
  evaluate: (m) => evaluateJudge(m, heldout),
  resume: a.resume,
  config,
});
const { chart } = await run.finish({
  title: `criteria-injected reward model (${a['shared-head'] ? 'shared head' : 'tier heads'})`,
  metrics: ['loss', 'grad_norm', 'lr', 'eval_pairwise_accuracy', 'eval_pointwise_accuracy', 'eval_safety_veto_f1'],
});
backbone.training = false;
const rmDir = path.join(a.out!, 'reward-model');
await rm.save(rmDir, { baseModel: modelDir });
process.stderr.write(`[train-rm] ${truncation}\n[train-rm] reward model: ${rmDir}\n`);
const e = evaluation!;
console.log(
  JSON.stringify({
    run_dir: a.out,
    steps: run.step,
    heldout: {
      pairwise_accuracy: e.pairwise_accuracy,
      pointwise_accuracy: e.pointwise_accuracy,
      safety_veto_precision: e.safety_veto_precision,
      safety_veto_recall: e.safety_veto_recall,
      safety_veto_f1: e.safety_veto_f1,
      pairwise_accuracy_proficiency: e.pairwise_accuracy_proficiency,
      pairwise_accuracy_excellence: e.pairwise_accuracy_excellence,
      pairwise_accuracy_safety: e.pairwise_accuracy_safety,
      ranking_accuracy: e.ranking_accuracy,
      pairs: e.pairs,
    },
    reward_model: rmDir,
    chart,
  }),
);
run.dispose();
