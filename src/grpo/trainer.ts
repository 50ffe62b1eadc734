// The GRPO trainer (TRL GRPOTrainer semantics): sample G completions per prompt, score them with
// reward functions (the criteria-injected RM among them), turn rewards into group-relative
// advantages and minimise the clipped policy loss with a KL penalty to a reference policy.
import * as tf from '@tensorflow/tfjs';
import type { ChatMessage } from '../data/chat.js';
import { padBatch, disposeBatch } from '../data/batch.js';
import { EpochSampler, type EpochPosition } from '../data/rng.js';
import type { ChatTokenizer } from '../data/tokenizer.js';
import { withAdaptersDisabled } from '../model/lora.js';
import type { Qwen3ForCausalLM } from '../model/qwen3.js';
import { TrainingRun } from '../train/run.js';
import { combineRewards, fracZeroStd, groupAdvantages, type AdvantageOptions } from './advantages.js';
import { grpoLossTerms, type GrpoLossOptions, type GrpoMetricTensors } from './loss.js';
import { rollout } from './rollouts.js';

export interface GrpoPrompt {
  id: string;
  messages: ChatMessage[];
  /** Anything a reward function needs about the prompt (e.g. its rubric record). */
  context?: unknown;
}

/** A reward function: one reward per completion (NaN when it cannot score one). */
export interface RewardFunction {
  name: string;
  weight?: number;
  score(prompts: GrpoPrompt[], completions: string[], completionIds: number[][]): Promise<number[]>;
}

export interface GrpoOptions extends GrpoLossOptions {
  policy: Qwen3ForCausalLM;
  tokenizer: ChatTokenizer;
  prompts: GrpoPrompt[];
  rewards: RewardFunction[];
  runDir: string;
  steps: number;
  lr: number;
  seed: number;
  /** Prompts per step (default 2); each gets numGenerations completions. */
  promptsPerStep?: number;
  /** G (default 8, as the paper). */
  numGenerations?: number;
  maxNewTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  scaleRewards?: AdvantageOptions['scale'];
  maskTruncatedCompletions?: boolean;
  /** Policy updates per generation batch (default 1; > 1 stores the old log-probs). */
  numIterations?: number;
  /** Reference policy: 'adapters' (the policy with LoRA disabled) or a frozen model. Needed when
   * beta != 0; default 'adapters' when the policy has adapters. */
  reference?: 'adapters' | Qwen3ForCausalLM;
  /** Completions per forward pass in the loss (default 4). */
  microBatch?: number;
  saveEvery?: number;
  resume?: boolean;
  quiet?: boolean;
  config?: Record<string, unknown>;
}

/** Per-token log-probs of the completions ([B, L]) under `model`, completions right-aligned; with
 * `entropyMask` also the summed entropy of the masked completion positions (no gradient). */
function completionLogp(model: Qwen3ForCausalLM, batch: ReturnType<typeof padBatch>, L: number, temperature: number): tf.Tensor2D;
function completionLogp(model: Qwen3ForCausalLM, batch: ReturnType<typeof padBatch>, L: number, temperature: number, entropyMask: tf.Tensor2D): [tf.Tensor2D, tf.Scalar];
function completionLogp(model: Qwen3ForCausalLM, batch: ReturnType<typeof padBatch>, L: number, temperature: number, entropyMask?: tf.Tensor2D): tf.Tensor2D | [tf.Tensor2D, tf.Scalar] {
  return tf.tidy(() => {
    const [B, T] = batch.inputIds.shape;
    const hidden = model.hiddenStates(batch.inputIds, { attentionMask: batch.attentionMask });
    const H = hidden.shape[2];
    // Position t predicts token t + 1: the completion's L tokens are predicted by the L positions before them.
    const { logp, entropy } = model.tokenLogProbs(hidden.slice([0, T - L - 1, 0], [B, L, H]), batch.inputIds.slice([0, T - L], [B, L]), { temperature, entropy: entropyMask !== undefined });
    if (!entropyMask) return logp;
    return [logp, entropy!.mul(entropyMask.toFloat()).sum() as tf.Scalar] as [tf.Tensor2D, tf.Scalar];
  });
}

export async function trainGrpo(opts: GrpoOptions): Promise<TrainingRun> {
  const { policy, tokenizer: tok } = opts;
  const G = opts.numGenerations ?? 8;
  const P = opts.promptsPerStep ?? 2;
  const beta = opts.beta ?? 0;
  const temperature = opts.temperature ?? 1;
  const iterations = opts.numIterations ?? 1;
  const micro = opts.microBatch ?? 4;
  const reference = beta === 0 ? null : opts.reference ?? (policy.adapters.size > 0 ? 'adapters' : null);
  if (beta !== 0 && !reference) throw new Error('trainGrpo: beta != 0 needs a reference policy: LoRA adapters on the policy, or opts.reference');
  if (opts.prompts.length === 0) throw new Error('trainGrpo: no prompts');
  const run = await TrainingRun.start({
    runDir: opts.runDir, model: policy, lr: opts.lr, totalSteps: opts.steps, seed: opts.seed, schedule: { type: 'constant' },
    maxGradNorm: 1, saveEvery: opts.saveEvery ?? 0, resume: opts.resume, quiet: opts.quiet, config: opts.config, label: 'GRPO',
  });
  const sampler = new EpochSampler(opts.prompts.length, `${opts.seed}:grpo`, run.data as EpochPosition | undefined);
  const stops = tok.stopTokenIds;
  const pad = tok.padTokenId;

  while (!run.done) {
    const picked = sampler.take(P).map((i) => opts.prompts[i]);
    run.data = sampler.position;
    // 1. Rollouts with the current policy (sampling: no dropout).
    const promptIds = picked.map((p) => tok.encodeChat(p.messages, { addGenerationPrompt: true, enableThinking: false }));
    policy.training = false;
    const ro = await rollout(policy, promptIds, {
      numGenerations: G, maxNewTokens: opts.maxNewTokens ?? 64, temperature, topP: opts.topP, topK: opts.topK, stopTokenIds: stops,
      padTokenId: pad, seed: `${opts.seed}:${run.step}`, maskTruncatedCompletions: opts.maskTruncatedCompletions,
    });
    // Embedding rows past the tokenizer's ids (padding rows) have no text: left out of the decode.
    const texts = ro.completions.map((c, i) => tok.decode(c.slice(0, ro.lengths[i]).filter((id) => id < tok.vocabSize), { skipSpecialTokens: true }));
    const groupPrompts = ro.promptIndex.map((i) => picked[i]);
    // 2. Rewards and advantages.
    const ids = ro.completions.map((c, i) => c.slice(0, ro.lengths[i]));
    const perFn = await Promise.all(opts.rewards.map((f) => f.score(groupPrompts, texts, ids)));
    const rewards = combineRewards(perFn, opts.rewards.map((f) => f.weight ?? 1));
    const advantages = groupAdvantages(rewards, G, { scale: opts.scaleRewards });
    // 3. Sequences: prompt + completion, left padded, so every completion fills the last L columns.
    const L = ro.completions[0].length;
    const rows = ro.completions.map((c, i) => [...promptIds[ro.promptIndex[i]], ...c]);
    const B = rows.length;
    const activeTokens = ro.mask.flat().reduce((a, v) => a + v, 0);
    const slices: { batch: ReturnType<typeof padBatch>; mask: tf.Tensor2D; adv: tf.Tensor1D; old?: tf.Tensor2D; ref?: tf.Tensor2D; rows: number }[] = [];
    for (let r0 = 0; r0 < B; r0 += micro) {
      const idx = Array.from({ length: Math.min(micro, B - r0) }, (_, k) => r0 + k);
      const batch = padBatch(idx.map((i) => rows[i]), pad);
      const mask = tf.tensor2d(idx.map((i) => ro.mask[i]), [idx.length, L], 'int32');
      const adv = tf.tensor1d(idx.map((i) => advantages[i]));
      const old = iterations > 1 ? completionLogp(policy, batch, L, temperature) : undefined;
      const ref = reference === null ? undefined
        : reference === 'adapters' ? withAdaptersDisabled(policy, () => completionLogp(policy, batch, L, temperature))
        : completionLogp(reference, batch, L, temperature);
      slices.push({ batch, mask, adv, old, ref, rows: idx.length });
    }
    // 4. Policy updates.
    policy.training = true;
    for (let it = 0; it < iterations && !run.done; it++) {
      // Per micro-batch device scalars, read once after the step (no host sync inside it).
      const terms: (GrpoMetricTensors & { entropySum: tf.Scalar })[] = [];
      await run.trainStep(
        slices.map((s) => ({
          weight: opts.lossType === 'dapo' ? 1 : s.rows / B,
          loss: () => {
            const [logp, entropySum] = completionLogp(policy, s.batch, L, temperature, s.mask);
            const { loss, metrics: m } = grpoLossTerms({ logp, mask: s.mask, advantages: s.adv, oldLogp: s.old, refLogp: s.ref }, { ...opts, activeTokens });
            terms.push({ ...m, entropySum: tf.keep(entropySum) });
            return loss;
          },
        })),
        { tokens: slices.reduce((a, s) => a + s.batch.inputIds.size, 0) },
      );
      const read = async (k: keyof (typeof terms)[number]) => Promise.all(terms.flatMap((t) => (t[k] ? [t[k]!.data().then((d) => d[0])] : [])));
      const metrics = { kl: await read('kl'), low: await read('clipRatioLow'), high: await read('clipRatioHigh'), region: await read('clipRatioRegion') };
      const entropy = (await read('entropySum')).reduce((a, v) => a + v, 0) / Math.max(1, activeTokens);
      tf.dispose(terms.flatMap((t) => Object.values(t)));
      const mean = (xs: number[]) => (xs.length ? xs.reduce((a, v) => a + v, 0) / xs.length : NaN);
      const finite = Array.from(rewards).map((v) => (Number.isNaN(v) ? 0 : v));
      const rMean = mean(finite);
      const row: Record<string, number> = {
        reward: rMean,
        reward_std: Math.sqrt(mean(finite.map((v) => (v - rMean) ** 2))),
        frac_reward_zero_std: fracZeroStd(finite, G),
        'completions/mean_length': mean(ro.lengths),
        'completions/clipped_ratio': mean(ro.truncated.map(Number)),
        'clip_ratio/low_mean': mean(metrics.low),
        'clip_ratio/high_mean': mean(metrics.high),
        'clip_ratio/region_mean': mean(metrics.region),
        entropy,
      };
      if (metrics.kl.length) row.kl = mean(metrics.kl);
      opts.rewards.forEach((f, k) => (row[`rewards/${f.name}/mean`] = mean(perFn[k].filter((v) => !Number.isNaN(v)))));
      run.metrics.append({ step: run.step, ...row });
    }
    for (const s of slices) {
      disposeBatch(s.batch);
      tf.dispose([s.mask, s.adv, ...(s.old ? [s.old] : []), ...(s.ref ? [s.ref] : [])]);
    }
  }
  policy.training = false;
  return run;
}
