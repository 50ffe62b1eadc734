// The GRPO trainer (TRL GRPOTrainer semantics): sample G completions per prompt, score them with
// reward functions (the criteria-injected RM among them), turn rewards into group-relative
// advantages and minimise the policy loss, with a KL penalty to a reference policy, an entropy
// bonus, DAPO's dynamic sampling and TR-DPO's reference sync when asked (docs/training.md).
import * as tf from '@tensorflow/tfjs';
import type { ChatMessage } from '../data/chat.js';
import { padBatch, disposeBatch, type TokenBatch } from '../data/batch.js';
import { EpochSampler, type EpochPosition } from '../data/rng.js';
import type { ChatTokenizer } from '../data/tokenizer.js';
import { withAdaptersDisabled } from '../model/lora.js';
import type { Qwen3ForCausalLM } from '../model/qwen3.js';
import { stepsPerGeneration, validateConfig, type GrpoConfig } from '../train/config.js';
import { runOptions, TrainingRun } from '../train/run.js';
import { combineRewards, fracZeroStd, nanmean as nanMean, nanstd as nanStd, rewardAdvantages, zeroStdGroups } from './advantages.js';
import { grpoLossTerms, type GrpoLossOptions, type GrpoMetricTensors } from './loss.js';
import { importanceSamplingTerms, samplingMetrics } from './importance_sampling.js';
import { completionMasks } from './rollouts.js';
import { errorMessage, type EngineCompletions, type RolloutEngine, type RolloutRequest } from '../rollout/engine.js';
import { createTfjsEngine } from '../rollout/tfjs.js';

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
  /** Held-out prompts for the evaluation every `eval_every` steps. */
  evalPrompts?: GrpoPrompt[];
  /** Where rollouts are sampled (default: the tfjs engine on the live policy). An inference
   * engine (llama.cpp, an OpenAI-compatible server) is synced every `sync_every` steps, and its
   * log-probs feed TRL's importance-sampling correction. The caller closes it. */
  engine?: RolloutEngine;
  /** The caller opened the run folder already (openRunDir), e.g. to train starting points in it. */
  prepared?: boolean;
  /** No progress output. */
  quiet?: boolean;
}

/** What a checkpoint keeps of the trainer besides weights and optimizer: the prompt order's
 * position and the adaptive entropy controller. */
interface GrpoState {
  position: EpochPosition;
  entropy_coef: number;
  /** null: no step measured yet (TRL starts from +inf). */
  last_entropy: number | null;
}

/** One prompt's group: its G completions (ids through the stop token) and every function's rewards. */
interface Group {
  prompt: GrpoPrompt;
  promptIds: number[];
  completions: number[][];
  truncated: boolean[];
  /** rewards[k][j]: function k's reward of completion j. */
  rewards: number[][];
  /** The sampler's log-probs of each completion's tokens (an inference engine's). */
  logprobs?: number[][];
}

/** One micro-batch of a step, with what the generation pass computed for it. */
interface Slice {
  batch: TokenBatch;
  mask: tf.Tensor2D;
  adv: tf.Tensor1D;
  old?: tf.Tensor2D;
  ref?: tf.Tensor2D;
  /** The sampler's log-probs and TRL's importance-sampling ratio from them (engine rollouts). */
  sampling?: tf.Tensor2D;
  isRatio?: tf.Tensor2D;
  rows: number;
}

/** Per-token log-probs and entropies of the completions ([B, L] each) under `model`, completions
 * right-aligned: one fused pass (the entropy differentiable when an entropy bonus trains on it). */
function completionLogp(model: Qwen3ForCausalLM, batch: TokenBatch, L: number, temperature: number, entropy: boolean | 'differentiable' = false) {
  return model.targetLogProbs(batch.inputIds, { attentionMask: batch.attentionMask, targets: { lastTokens: L }, temperature, entropy });
}

const DAPO_LIKE = new Set(['dapo', 'cispo', 'vespo']);

export async function trainGrpo(opts: GrpoOptions): Promise<TrainingRun> {
  const { policy, tokenizer: tok } = opts;
  const c = validateConfig('grpo', opts.config);
  const G = c.num_generations;
  const P = c.prompts_per_step;
  const S = stepsPerGeneration(c);
  const temperature = c.temperature;
  const iterations = c.num_iterations;
  const lossOptions: GrpoLossOptions = {
    lossType: c.loss_type, epsilon: c.epsilon, epsilonHigh: c.epsilon_high ?? undefined, delta: c.delta ?? undefined, beta: c.beta,
    importanceSampling: c.importance_sampling, maxCompletionLength: c.max_new_tokens,
    sapoTemperaturePos: c.sapo_temperature_pos, sapoTemperatureNeg: c.sapo_temperature_neg,
    vespoKPos: c.vespo_k_pos, vespoLambdaPos: c.vespo_lambda_pos, vespoKNeg: c.vespo_k_neg, vespoLambdaNeg: c.vespo_lambda_neg,
    useBiasCorrectionKl: c.use_bias_correction_kl, offPolicyMaskThreshold: c.off_policy_mask_threshold ?? undefined,
    topEntropyQuantile: c.top_entropy_quantile,
  };
  const entropyBonus = c.entropy_coef !== 0 || c.use_adaptive_entropy;
  const reference = c.beta === 0 ? null : opts.reference ?? (policy.adapters.size > 0 ? 'adapters' : null);
  if (c.beta !== 0 && !reference) throw new Error('trainGrpo: beta != 0 needs a reference policy: LoRA adapters on the policy, or opts.reference');
  if (c.sync_ref_model && (reference === null || reference === 'adapters')) throw new Error('trainGrpo: sync_ref_model needs a reference model of its own (opts.reference), not the adapter-free policy');
  if (opts.prompts.length === 0) throw new Error('trainGrpo: no prompts');
  if (opts.rewards.length === 0) throw new Error('trainGrpo: no reward functions');
  if (c.eval_every > 0 && !opts.evalPrompts?.length) throw new Error('trainGrpo: eval_every > 0 needs evalPrompts');
  const run = await TrainingRun.start({ ...runOptions('grpo', c, opts), model: policy, label: 'GRPO' });
  const engine = opts.engine ?? createTfjsEngine(policy);
  const timing = { rollout: 0, logprobs: 0, sync: 0 };
  /** The step whose weights the engine holds. */
  let synced = 0;
  const sync = async () => {
    const t0 = performance.now();
    try {
      await engine.sync(policy, run.step);
    } catch (err) {
      throw new Error(`trainGrpo: step ${run.step}: syncing the ${engine.name} engine: ${errorMessage(err)}`, { cause: err });
    }
    synced = run.step;
    timing.sync += (performance.now() - t0) / 1000;
  };
  // A resumed policy has the checkpoint's weights, which the caller's engine has not seen.
  if (engine.name !== 'tfjs' && run.step > 0) await sync();
  const saved = run.data as GrpoState | undefined;
  const sampler = new EpochSampler(opts.prompts.length, `${c.seed}:grpo`, saved?.position);
  const state: GrpoState = { position: sampler.position, entropy_coef: saved?.entropy_coef ?? c.entropy_coef, last_entropy: saved?.last_entropy ?? null };
  run.data = state;
  const weights = opts.rewards.map((f) => f.weight ?? 1);
  const stops = tok.stopTokenIds;
  const stopSet = new Set(stops);
  // With top-k or top-p an engine's log-probs are those of the renormalised distribution it
  // samples from: their ratio to the trainer's measures the mass the filter dropped (measured on
  // the tiny policy with top-k 50: a log-prob gap of 0.9 per token, ratios of 0.02-0.08), not the
  // engine / trainer mismatch TRL's correction is for, and would shrink every update. The
  // correction then stays off (TRL applies it regardless), saying so once.
  const filtered = c.top_k > 0 || c.top_p < 1;
  const correct = c.importance_sampling_correction && engine.name !== 'tfjs' && !filtered;
  if (c.importance_sampling_correction && engine.name !== 'tfjs' && filtered && !opts.quiet) {
    process.stderr.write(`[promedical] importance-sampling correction off: with top-k ${c.top_k} / top-p ${c.top_p} the ${engine.name} engine's log-probs are of the filtered distribution (use --top-k 0 --top-p 1 to correct for the engine's numerics)\n`);
  }
  // The sampler's log-probs cost an inference engine time (llama.cpp sorts the vocabulary per
  // token for them): asked for only when the correction or the off-policy mask reads them.
  const wantSamplerLogprobs = engine.name !== 'tfjs' && (correct || c.off_policy_mask_threshold !== null);
  const pad = tok.padTokenId;
  const sampling: Omit<RolloutRequest, 'prompts' | 'numGenerations' | 'seed'> = {
    maxNewTokens: c.max_new_tokens, temperature, topP: c.top_p, topK: c.top_k, repetitionPenalty: c.repetition_penalty, stopTokenIds: stops,
  };

  /** G completions for each prompt, scored by every reward function. */
  const sampleGroups = async (prompts: GrpoPrompt[], g: number, seed: string): Promise<Group[]> => {
    const promptIds = prompts.map((p) => tok.encodeChat(p.messages, { addGenerationPrompt: true, enableThinking: false }));
    policy.training = false; // sampling: no dropout
    const t0 = performance.now();
    let out: EngineCompletions;
    try {
      out = await engine.generate({ ...sampling, prompts: promptIds, numGenerations: g, seed, logprobs: wantSamplerLogprobs });
    } catch (err) {
      throw new Error(`trainGrpo: step ${run.step + 1}: ${errorMessage(err)}`, { cause: err });
    }
    timing.rollout += (performance.now() - t0) / 1000;
    const ids = out.completions;
    if (ids.length !== promptIds.length * g) throw new Error(`trainGrpo: step ${run.step + 1}: the ${engine.name} engine returned ${ids.length} completions for ${promptIds.length} prompts x ${g}`);
    // Embedding rows past the tokenizer's ids (padding rows) have no text: left out of the decode.
    const texts = ids.map((x) => tok.decode(x.filter((id) => id < tok.vocabSize), { skipSpecialTokens: true }));
    const perFn = await Promise.all(opts.rewards.map((f) => f.score(ids.map((_, i) => prompts[Math.floor(i / g)]), texts, ids)));
    perFn.forEach((r, k) => {
      if (!Array.isArray(r) || r.length !== ids.length) throw new Error(`trainGrpo: reward function "${opts.rewards[k].name}" returned ${Array.isArray(r) ? r.length : typeof r} rewards for ${ids.length} completions`);
    });
    return prompts.map((prompt, p) => {
      const rows = Array.from({ length: g }, (_, j) => p * g + j);
      return {
        prompt, promptIds: promptIds[p], completions: rows.map((i) => ids[i]), truncated: rows.map((i) => !stopSet.has(ids[i].at(-1) ?? -1)),
        rewards: perFn.map((r) => rows.map((i) => r[i])), logprobs: out.logprobs ? rows.map((i) => out.logprobs![i]) : undefined,
      };
    });
  };

  /** The groups of one generation batch: with dynamic sampling, groups whose rewards all agree
   * are dropped and more prompts drawn, up to max_resample_tries extra rounds. */
  const generationBatch = async (count: number) => {
    const kept: Group[] = [];
    const flat: Group[] = [];
    let drawn = 0;
    const rounds = c.dynamic_sampling ? 1 + c.max_resample_tries : 1;
    for (let round = 0; round < rounds && kept.length < count; round++) {
      const picked = sampler.take(count - kept.length).map((i) => opts.prompts[i]);
      const groups = await sampleGroups(picked, G, round === 0 ? `${c.seed}:${run.step}` : `${c.seed}:${run.step}:${round}`);
      drawn += groups.length;
      for (const g of groups) (c.dynamic_sampling && zeroStdGroups(combineRewards(g.rewards, weights), G)[0] ? flat : kept).push(g);
    }
    // Out of tries: the batch is filled with zero-spread groups (advantage 0: no policy gradient).
    const fill = flat.slice(0, count - kept.length);
    return { groups: [...kept, ...fill], drawn, dropped: drawn - kept.length, unfilled: fill.length };
  };

  /** The step's tensors: prompt + completion rows left padded, so completions fill the last L columns. */
  const slicesOf = (groups: Group[], advantages: Float32Array, offset: number): { slices: Slice[]; activeTokens: number; L: number; samplingStats?: tf.Tensor1D } => {
    const completions = groups.flatMap((g) => g.completions);
    const masks = completionMasks(completions, stops, pad, c.mask_truncated_completions);
    const L = masks.completions[0].length;
    const rows = groups.flatMap((g, i) => g.completions.map((_, j) => [...g.promptIds, ...masks.completions[i * G + j]]));
    const activeTokens = masks.mask.flat().reduce((a, v) => a + v, 0);
    const slices: Slice[] = [];
    const sampled = groups.every((g) => g.logprobs) ? groups.flatMap((g) => g.logprobs!) : null;
    // The trainer's own generation-time log-probs are needed off policy, and against a sampler's.
    const needOld = iterations > 1 || S > 1 || sampled !== null;
    const t0 = performance.now();
    for (let r0 = 0; r0 < rows.length; r0 += c.micro_batch_size) {
      const idx = Array.from({ length: Math.min(c.micro_batch_size, rows.length - r0) }, (_, k) => r0 + k);
      const batch = padBatch(idx.map((i) => rows[i]), pad);
      const mask = tf.tensor2d(idx.map((i) => masks.mask[i]), [idx.length, L], 'int32');
      const adv = tf.tensor1d(idx.map((i) => advantages[offset + i]));
      const logpOf = (m: Qwen3ForCausalLM) => tf.tidy(() => completionLogp(m, batch, L, temperature).logp);
      const old = needOld ? logpOf(policy) : undefined;
      const ref = reference === null ? undefined : reference === 'adapters' ? withAdaptersDisabled(policy, () => logpOf(policy)) : logpOf(reference);
      const samplingLogp = sampled ? tf.tensor2d(idx.map((i) => Array.from({ length: L }, (_, t) => sampled[i][t] ?? 0)), [idx.length, L]) : undefined;
      slices.push({ batch, mask, adv, old, ref, sampling: samplingLogp, rows: idx.length });
    }
    timing.logprobs += (performance.now() - t0) / 1000;
    // TRL's correction of the sampler / trainer mismatch, over the whole step's completions.
    // Its statistics stay on the device until the step's metrics are read.
    let samplingStats: tf.Tensor1D | undefined;
    if (sampled && correct) {
      const [oldAll, sampAll, maskAll] = [slices.map((x) => x.old!), slices.map((x) => x.sampling!), slices.map((x) => x.mask)].map((ts) => tf.concat(ts) as tf.Tensor2D);
      const { ratio, stats } = importanceSamplingTerms(oldAll, sampAll, maskAll, {
        mode: c.importance_sampling_mode, clipMin: c.importance_sampling_clip_min, clipMax: c.importance_sampling_clip_max,
      });
      samplingStats = stats;
      let r0 = 0;
      for (const x of slices) {
        x.isRatio = ratio.slice([r0, 0], [x.rows, -1]);
        r0 += x.rows;
      }
      tf.dispose([oldAll, sampAll, maskAll, ratio]);
    }
    return { slices, activeTokens, L, samplingStats };
  };

  while (!run.done) {
    // 1. One generation batch for S optimizer steps (x num_iterations), scored and normalised.
    if (engine.name !== 'tfjs' && run.step - synced >= c.sync_every) await sync();
    const lag = run.step - synced;
    const gen = await generationBatch(S * P);
    state.position = sampler.position;
    const groups = gen.groups;
    const perFn = opts.rewards.map((_, k) => groups.flatMap((g) => g.rewards[k]));
    const advantages = rewardAdvantages(perFn, G, { weights, aggregation: c.multi_objective_aggregation, scale: c.scale_rewards });
    const summed = combineRewards(perFn, weights);
    const perStep = Math.ceil(groups.length / S);
    const steps = Array.from({ length: S }, (_, s) => ({ first: s * perStep, groups: groups.slice(s * perStep, (s + 1) * perStep) })).filter((s) => s.groups.length > 0);
    policy.training = false;
    const prepared = steps.map((s) => ({ ...s, ...slicesOf(s.groups, advantages, s.first * G) }));

    const optimizerStep = async (s: (typeof prepared)[number]) => {
      const B = s.slices.reduce((a, x) => a + x.rows, 0);
      const coef = !entropyBonus ? 0 : c.use_adaptive_entropy ? (state.last_entropy !== null && state.last_entropy <= c.entropy_target ? state.entropy_coef : 0) : state.entropy_coef;
      // Per micro-batch device scalars, read once after the step (no host sync inside it).
      const terms: (GrpoMetricTensors & { entropySum: tf.Scalar })[] = [];
      await run.trainStep(
        s.slices.map((x) => ({
          weight: DAPO_LIKE.has(c.loss_type) ? 1 : x.rows / B,
          loss: () => {
            const { logp, entropy } = completionLogp(policy, x.batch, s.L, temperature, entropyBonus ? 'differentiable' : true);
            const { loss, metrics } = grpoLossTerms(
              { logp, mask: x.mask, advantages: x.adv, oldLogp: x.old, refLogp: x.ref, entropies: entropy, samplingLogp: x.sampling, importanceSamplingRatio: x.isRatio },
              { ...lossOptions, activeTokens: s.activeTokens, entropyCoef: coef },
            );
            terms.push({ ...metrics, entropySum: tf.keep(tf.tidy(() => entropy!.mul(x.mask.toFloat()).sum() as tf.Scalar)) });
            return loss;
          },
        })),
        { tokens: s.slices.reduce((a, x) => a + x.batch.inputIds.size, 0), after: () => afterUpdate(s, terms) },
      );
      if (c.eval_every > 0 && run.step % c.eval_every === 0) await evaluate();
    };

    /** The step's metrics row, the adaptive entropy update and TR-DPO's sync: after the update,
     * before the step's checkpoint (which keeps the controller's state). */
    const afterUpdate = async (s: (typeof prepared)[number], terms: (GrpoMetricTensors & { entropySum: tf.Scalar })[]) => {
      const offset = s.first * G;
      const read = async (k: keyof (typeof terms)[number]) => Promise.all(terms.flatMap((t) => (t[k] ? [t[k]!.data().then((d) => d[0])] : [])));
      const [kl, low, high, region, cispo, phi, entropySums] = await Promise.all(
        (['kl', 'clipRatioLow', 'clipRatioHigh', 'clipRatioRegion', 'cispoClipRatio', 'vespoPhiMean', 'entropySum'] as const).map(read),
      );
      tf.dispose(terms.flatMap((t) => Object.values(t)));
      const entropy = entropySums.reduce((a, v) => a + v, 0) / Math.max(1, s.activeTokens);
      if (c.use_adaptive_entropy) {
        state.entropy_coef = entropy <= c.entropy_target
          ? Math.min(state.entropy_coef + c.entropy_coef_delta, c.entropy_coef_max)
          : Math.max(state.entropy_coef - c.entropy_coef_delta, c.entropy_coef_min);
        state.last_entropy = entropy;
      }
      if (c.sync_ref_model && run.step % c.ref_model_sync_steps === 0) mixReference(reference as Qwen3ForCausalLM, policy, c.ref_model_mixup_alpha);
      const rows = s.groups.length * G;
      const mine = Array.from(summed.subarray(offset, offset + rows));
      const row: Record<string, number> = {
        reward: nanMean(mine),
        reward_std: nanStd(mine),
        frac_reward_zero_std: fracZeroStd(mine, G),
        'completions/mean_length': mean(s.groups.flatMap((g) => g.completions.map((x) => x.length))),
        'completions/clipped_ratio': mean(s.groups.flatMap((g) => g.truncated.map(Number))),
        'clip_ratio/low_mean': mean(low),
        'clip_ratio/high_mean': mean(high),
        'clip_ratio/region_mean': mean(region),
        entropy,
      };
      if (kl.length) row.kl = mean(kl);
      if (cispo.length) row.cispo_clip_ratio = mean(cispo);
      if (phi.length) row['vespo/phi_seq_mean'] = mean(phi);
      if (entropyBonus) row.entropy_coef = state.entropy_coef; // after this step's update, as TRL logs it
      if (c.dynamic_sampling) {
        row['dynamic_sampling/drawn_groups'] = gen.drawn;
        row['dynamic_sampling/dropped_groups'] = gen.dropped;
        row['dynamic_sampling/unfilled_groups'] = gen.unfilled ?? 0;
      }
      if (s.samplingStats) Object.assign(row, samplingMetrics(await s.samplingStats.data()));
      if (engine.name !== 'tfjs') row['engine/weight_lag_steps'] = lag;
      // The generation batch's times, on its first step's row.
      if (timing.rollout + timing.logprobs + timing.sync > 0) {
        Object.assign(row, { 'time/rollout_s': timing.rollout, 'time/logprobs_s': timing.logprobs, 'time/sync_s': timing.sync });
        Object.assign(timing, { rollout: 0, logprobs: 0, sync: 0 });
      }
      opts.rewards.forEach((f, k) => {
        const r = perFn[k].slice(offset, offset + rows);
        row[`rewards/${f.name}/mean`] = nanMean(r);
        row[`rewards/${f.name}/std`] = nanStd(r);
      });
      return row;
    };

    // 2. Policy updates: each iteration walks the generation batch's steps in order (TRL's order).
    policy.training = true;
    for (let it = 0; it < iterations && !run.done; it++) {
      for (const s of prepared) {
        if (run.done) break;
        await optimizerStep(s);
      }
    }
    for (const s of prepared) {
      s.samplingStats?.dispose();
      for (const x of s.slices) {
        disposeBatch(x.batch);
        tf.dispose([x.mask, x.adv, ...[x.old, x.ref, x.sampling, x.isRatio].filter((t): t is tf.Tensor2D => t !== undefined)]);
      }
    }
  }

  /** eval/*: num_generations_eval sampled completions per held-out prompt, scored like training's. */
  async function evaluate(): Promise<void> {
    const g = c.num_generations_eval ?? G;
    const groups: Group[] = [];
    for (let i = 0; i < opts.evalPrompts!.length; i += P) groups.push(...(await sampleGroups(opts.evalPrompts!.slice(i, i + P), g, `${c.seed}:eval:${run.step}:${i}`)));
    const perFn = opts.rewards.map((_, k) => groups.flatMap((gr) => gr.rewards[k]));
    const row: Record<string, number> = {
      'eval/reward': nanMean(Array.from(combineRewards(perFn, weights))),
      'eval/completions/mean_length': mean(groups.flatMap((gr) => gr.completions.map((x) => x.length))),
    };
    opts.rewards.forEach((f, k) => (row[`eval/rewards/${f.name}/mean`] = nanMean(perFn[k])));
    run.metrics.append({ step: run.step, ...row });
    policy.training = true;
  }

  policy.training = false;
  if (!opts.engine) await engine.close();
  return run;
}

// docs/training.md, "Reference sync (TR-DPO)"
/** TR-DPO's soft update of the reference: ref <- alpha x policy + (1 - alpha) x ref, tensor by tensor. */
export function mixReference(reference: Qwen3ForCausalLM, policy: Qwen3ForCausalLM, alpha: number): void {
  const source = policy.namedParameters();
  for (const [name, v] of reference.namedParameters()) {
    const p = source.get(name);
    if (!p || p.shape.join() !== v.shape.join()) throw new Error(`mixReference: the policy has no tensor ${name} of shape [${v.shape}]`);
    tf.tidy(() => v.assign(v.mul(1 - alpha).add(p.mul(alpha))));
  }
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, v) => a + v, 0) / xs.length : NaN);
