// Training the criteria-injected reward model: per-criterion Bradley-Terry pairs with a pointwise
// term on the same logits, on the shared TrainingRun (AdamW, schedule, clipping, accumulation,
// checkpoints, exact resume).
import * as tf from '@tensorflow/tfjs';
import { disposeBatch } from '../data/batch.js';
import { eciPairBatch, TruncationCounter } from '../data/eci.js';
import { EpochSampler, type EpochPosition } from '../data/rng.js';
import { criterionPairs, gradeValue, type RubricRecord } from '../data/schema.js';
import { validateConfig, type RewardConfig } from '../train/config.js';
import { runOptions, TrainingRun } from '../train/run.js';
import { bradleyTerryLoss, pointwiseLoss } from './losses.js';
import type { CriteriaRewardModel } from './model.js';

export interface RewardTrainingOptions {
  rm: CriteriaRewardModel;
  train: RubricRecord[];
  /** The run's settings; missing fields take REWARD_CONFIG_DEFAULTS. Validated before anything is
   * written (ConfigError). `model`, `data`, `eval_data` and `format` are recorded, not read: the
   * model and records are the objects given here. */
  config: Partial<RewardConfig>;
  /** Held-out evaluation, run every eval_every steps and at the end. */
  evaluate?: (rm: CriteriaRewardModel) => Promise<Record<string, number>>;
  /** The caller opened the run folder already (openRunDir). */
  prepared?: boolean;
  /** No progress output. */
  quiet?: boolean;
}

export interface RewardPair {
  record: RubricRecord;
  chosen: string;
  rejected: string;
  criterionId: string;
  /** Grade difference (1 for boolean grades). */
  gap: number;
}

/** Every per-criterion pair of the records (derived from grades or given explicitly). */
export function rewardPairs(records: RubricRecord[]): RewardPair[] {
  const out: RewardPair[] = [];
  for (const record of records) {
    for (const p of criterionPairs(record)) {
      if (!p.criterion) continue; // holistic preferences have no criterion to inject
      const grade = (id: string) => gradeValue(record.responses.find((r) => r.id === id)?.grades?.[p.criterion!]);
      const gc = grade(p.chosen), gr = grade(p.rejected);
      out.push({ record, chosen: p.chosen, rejected: p.rejected, criterionId: p.criterion, gap: gc !== undefined && gr !== undefined ? gc - gr : 1 });
    }
  }
  return out;
}

export async function trainRewardModel(opts: RewardTrainingOptions): Promise<{ run: TrainingRun; evaluation: Record<string, number> | null; truncation: string }> {
  const { rm } = opts;
  const c = validateConfig('reward', opts.config);
  const pairs = rewardPairs(opts.train);
  if (pairs.length === 0) throw new Error(`trainRewardModel: the ${opts.train.length} training records give no per-criterion pairs (are their responses graded?)`);
  const batchSize = c.batch_size;
  const micro = c.micro_batch_size;
  const run = await TrainingRun.start({ ...runOptions('reward', c, opts), model: rm.backbone, extra: rm.heads, label: 'reward model' });
  const sampler = new EpochSampler(pairs.length, `${c.seed}:epoch`, run.data as EpochPosition | undefined);
  const counter = new TruncationCounter();
  let evaluation: Record<string, number> | null = null;
  const evalEvery = c.eval_every;

  while (!run.done) {
    const chosenIdx = sampler.take(batchSize);
    run.data = sampler.position;
    const microBatches = [];
    for (let i = 0; i < chosenIdx.length; i += micro) {
      const group = chosenIdx.slice(i, i + micro).map((k) => pairs[k]);
      const { chosen, rejected } = eciPairBatch(rm.tokenizer, group, { maxLength: rm.maxLength, counter });
      const tiers = group.map((p) => p.record.criteria.find((c) => c.id === p.criterionId)!.tier);
      const grade = (p: RewardPair, id: string) => gradeValue(p.record.responses.find((r) => r.id === id)?.grades?.[p.criterionId]) ?? 0;
      const targets = tf.tensor1d([...group.map((p) => grade(p, p.chosen)), ...group.map((p) => grade(p, p.rejected))]);
      const margin = c.margin ? tf.tensor1d(group.map((p) => c.margin * p.gap)) : undefined;
      microBatches.push({ chosen, rejected, tiers, targets, margin, share: group.length / chosenIdx.length });
    }
    await run.trainStep(
      microBatches.map((mb) => ({
        weight: mb.share,
        loss: () => {
          const rc = rm.score(mb.chosen, mb.tiers);
          const rr = rm.score(mb.rejected, mb.tiers);
          const bt = bradleyTerryLoss(rc, rr, { margin: mb.margin, centerCoefficient: c.center_coefficient });
          const pw = pointwiseLoss(tf.concat([rc, rr]) as tf.Tensor1D, mb.targets);
          return bt.add(pw.mul(c.pointwise_weight)) as tf.Scalar;
        },
      })),
      { tokens: microBatches.reduce((a, mb) => a + mb.chosen.inputIds.size + mb.rejected.inputIds.size, 0) },
    );
    for (const mb of microBatches) {
      disposeBatch(mb.chosen);
      disposeBatch(mb.rejected);
      tf.dispose([mb.targets, ...(mb.margin ? [mb.margin] : [])]);
    }
    if (opts.evaluate && evalEvery > 0 && run.step % evalEvery === 0 && !run.done) {
      evaluation = await opts.evaluate(rm);
      run.metrics.append({ step: run.step, ...prefixed(evaluation) });
    }
  }
  if (opts.evaluate) {
    evaluation = await opts.evaluate(rm);
    run.metrics.append({ step: run.step, ...prefixed(evaluation) });
  }
  return { run, evaluation, truncation: counter.toString() };
}

function prefixed(m: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [`eval_${k}`, v]));
}
