// Training the criteria-injected reward model: per-criterion Bradley-Terry pairs with a pointwise
// term on the same logits, on the shared TrainingRun (AdamW, schedule, clipping, accumulation,
// checkpoints, exact resume).
import * as tf from '@tensorflow/tfjs';
import { disposeBatch } from '../data/batch.js';
import { eciPairBatch, TruncationCounter } from '../data/eci.js';
import { EpochSampler, type EpochPosition } from '../data/rng.js';
import { criterionPairs, gradeValue, type RubricRecord } from '../data/schema.js';
import { TrainingRun, type TrainingRunOptions } from '../train/run.js';
import { bradleyTerryLoss, pointwiseLoss } from './losses.js';
import type { CriteriaRewardModel } from './model.js';

export interface RewardTrainingOptions {
  rm: CriteriaRewardModel;
  train: RubricRecord[];
  runDir: string;
  steps: number;
  /** Pairs per optimizer step (default 16). */
  batchSize?: number;
  /** Pairs per forward pass; batchSize / microBatch micro-batches are accumulated (default 8). */
  microBatch?: number;
  lr: number;
  seed: number;
  /** Weight of the pointwise BCE next to Bradley-Terry (default 0.5). */
  pointwiseWeight?: number;
  /** TRL's center_rewards_coefficient (default 0). */
  centerCoefficient?: number;
  /** Margin of each pair: this times the grade difference (default 0: plain Bradley-Terry). */
  margin?: number;
  warmupRatio?: number;
  weightDecay?: number;
  maxGradNorm?: number;
  saveEvery?: number;
  evalEvery?: number;
  /** Held-out evaluation, run every evalEvery steps and at the end. */
  evaluate?: (rm: CriteriaRewardModel) => Promise<Record<string, number>>;
  resume?: boolean;
  quiet?: boolean;
  config?: Record<string, unknown>;
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
  const pairs = rewardPairs(opts.train);
  if (pairs.length === 0) throw new Error('trainRewardModel: the training records give no per-criterion pairs (are responses graded?)');
  const batchSize = opts.batchSize ?? 16;
  const micro = Math.min(opts.microBatch ?? 8, batchSize);
  const runOpts: TrainingRunOptions = {
    runDir: opts.runDir,
    model: rm.backbone,
    extra: rm.heads,
    lr: opts.lr,
    totalSteps: opts.steps,
    schedule: { type: 'cosine', warmupSteps: Math.round((opts.warmupRatio ?? 0.1) * opts.steps) },
    weightDecay: opts.weightDecay ?? 0,
    maxGradNorm: opts.maxGradNorm ?? 1,
    saveEvery: opts.saveEvery ?? 0,
    seed: opts.seed,
    config: opts.config,
    resume: opts.resume,
    quiet: opts.quiet,
    label: 'reward model',
  };
  const run = await TrainingRun.start(runOpts);
  const sampler = new EpochSampler(pairs.length, `${opts.seed}:epoch`, run.data as EpochPosition | undefined);
  const counter = new TruncationCounter();
  let evaluation: Record<string, number> | null = null;
  const evalEvery = opts.evalEvery ?? 0;

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
      const margin = opts.margin ? tf.tensor1d(group.map((p) => opts.margin! * p.gap)) : undefined;
      microBatches.push({ chosen, rejected, tiers, targets, margin, share: group.length / chosenIdx.length });
    }
    await run.trainStep(
      microBatches.map((mb) => ({
        weight: mb.share,
        loss: () => {
          const rc = rm.score(mb.chosen, mb.tiers);
          const rr = rm.score(mb.rejected, mb.tiers);
          const bt = bradleyTerryLoss(rc, rr, { margin: mb.margin, centerCoefficient: opts.centerCoefficient });
          const pw = pointwiseLoss(tf.concat([rc, rr]) as tf.Tensor1D, mb.targets);
          return bt.add(pw.mul(opts.pointwiseWeight ?? 0.5)) as tf.Scalar;
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
