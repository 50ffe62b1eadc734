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
import { validateConfig, type GrpoConfig } from '../train/config.js';
import { runOptions, TrainingRun } from '../train/run.js';
import { combineRewards, fracZeroStd, groupAdvantages } from './advantages.js';
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

export interface GrpoOptions {
  policy: Qwen3ForCausalLM;
  tokenizer: ChatTokenizer;
  prompts: GrpoPrompt[];
  rewards: RewardFunction[];
  /** The run's settings; missing fields take GRPO_CONFIG_DEFAULTS (validated: ConfigError).
   * `policy`, `rm`, `data` and `eval_data` are recorded, not read. */
  config: Partial<GrpoConfig>;
  /** Reference policy: 'adapters' (the policy with LoRA disabled) or a frozen model. Needed when
   * beta != 0; default 'adapters' when the policy has adapters. */
  reference?: 'adapters' | Qwen3ForCausalLM;
  /** The caller opened the run folder already (openRunDir), e.g. to train starting points in it. */
  prepared?: boolean;
  /** No progress output. */
  quiet?: boolean;
}

/** Per-token log-probs of the completions ([B, L]) under `model`, completions right-aligned; with
 * `entropyMask` also the summed entropy of the masked completion positions (no gradient). */
function completionLogp(model: Qwen3ForCausalLM, batch: ReturnType<typeof padBatch>, L: number, temperature: number): tf.Tensor2D;
function completionLogp(model: Qwen3ForCausalLM, batch: ReturnType<typeof padBatch>, L: number, temperature: number, entropyMask: tf.Tensor2D): [tf.Tensor2D, tf.Scalar];
function completionLogp(model: Qwen3ForCausalLM, batch: ReturnType<typeof padBatch>, L: number, temperature: number, entropyMask?: tf.Tensor2D): tf.Tensor2D | [tf.Tensor2D, tf.Scalar] {
  return tf.tidy(() => {
    const { logp, entropy } = model.targetLogProbs(batch.inputIds, {
      attentionMask: batch.attentionMask, targets: { lastTokens: L }, temperature, entropy: entropyMask !== undefined,
    });
    if (!entropyMask) return logp;
    return [logp, entropy!.mul(entropyMask.toFloat()).sum() as tf.Scalar] as [tf.Tensor2D, tf.Scalar];
  });
}

export async function trainGrpo(opts: GrpoOptions): Promise<TrainingRun> {
  const { policy, tokenizer: tok } = opts;
  const c = validateConfig('grpo', opts.config);
  const G = c.num_generations;
  const P = c.prompts_per_step;
  const beta = c.beta;
  const temperature = c.temperature;
  const iterations = c.num_iterations;
  const micro = c.micro_batch_size;
  const lossOptions: GrpoLossOptions = {
    lossType: c.loss_type, epsilon: c.epsilon, epsilonHigh: c.epsilon_high ?? undefined, delta: c.delta ?? undefined, beta,
    importanceSampling: c.importance_sampling, maxCompletionLength: c.max_new_tokens,
  };
  const reference = beta === 0 ? null : opts.reference ?? (policy.adapters.size > 0 ? 'adapters' : null);
  if (beta !== 0 && !reference) throw new Error('trainGrpo: beta != 0 needs a reference policy: LoRA adapters on the policy, or opts.reference');
  if (opts.prompts.length === 0) throw new Error('trainGrpo: no prompts');
  const run = await TrainingRun.start({ ...runOptions('grpo', c, opts), model: policy, label: 'GRPO' });
  const sampler = new EpochSampler(opts.prompts.length, `${c.seed}:grpo`, run.data as EpochPosition | undefined);
  const stops = tok.stopTokenIds;
  const pad = tok.padTokenId;

  while (!run.done) {
    const picked = sampler.take(P).map((i) => opts.prompts[i]);
    run.data = sampler.position;
    // 1. Rollouts with the current policy (sampling: no dropout).
    const promptIds = picked.map((p) => tok.encodeChat(p.messages, { addGenerationPrompt: true, enableThinking: false }));
    policy.training = false;
    const ro = await rollout(policy, promptIds, {
      numGenerations: G, maxNewTokens: c.max_new_tokens, temperature, topP: c.top_p < 1 ? c.top_p : undefined, topK: c.top_k > 0 ? c.top_k : undefined,
      stopTokenIds: stops, padTokenId: pad, seed: `${c.seed}:${run.step}`, maskTruncatedCompletions: c.mask_truncated_completions,
    });
    // Embedding rows past the tokenizer's ids (padding rows) have no text: left out of the decode.
    const texts = ro.completions.map((c, i) => tok.decode(c.slice(0, ro.lengths[i]).filter((id) => id < tok.vocabSize), { skipSpecialTokens: true }));
    const groupPrompts = ro.promptIndex.map((i) => picked[i]);
    // 2. Rewards and advantages.
    const ids = ro.completions.map((c, i) => c.slice(0, ro.lengths[i]));
    const perFn = await Promise.all(opts.rewards.map((f) => f.score(groupPrompts, texts, ids)));
    const rewards = combineRewards(perFn, opts.rewards.map((f) => f.weight ?? 1));
    const advantages = groupAdvantages(rewards, G, { scale: c.scale_rewards });
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
          weight: c.loss_type === 'dapo' ? 1 : s.rows / B,
          loss: () => {
            const [logp, entropySum] = completionLogp(policy, s.batch, L, temperature, s.mask);
            const { loss, metrics: m } = grpoLossTerms({ logp, mask: s.mask, advantages: s.adv, oldLogp: s.old, refLogp: s.ref }, { ...lossOptions, activeTokens });
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
