// Trainer configs in the style of TRL's TrainingArguments / RewardConfig / SFTConfig / GRPOConfig:
// one typed snake_case record per trainer, every field documented with its default and where the
// value comes from, defaults in one exported constant per config, and one validator. The CLI reads
// its flags, defaults and --help from the field tables below, so the library and the CLI cannot
// disagree. A run's config.json is such a record (and a valid --config).
import * as path from 'node:path';
import { ConfigError } from '../model/config.js';

export { ConfigError };

/** One field of a config: its kind, limits, default and the sentence its --help shows. */
export type Field =
  | { kind: 'int'; doc: string; min?: number; max?: number; nullable?: boolean; resumable?: boolean }
  | { kind: 'number'; doc: string; min?: number; max?: number; exclusiveMin?: boolean; exclusiveMax?: boolean; nullable?: boolean; resumable?: boolean }
  | { kind: 'string'; doc: string; nullable?: boolean; resumable?: boolean }
  | { kind: 'enum'; doc: string; values: readonly string[]; resumable?: boolean }
  | { kind: 'boolean'; doc: string; resumable?: boolean };

/** What every trainer shares (TRL's TrainingArguments, reduced to what a single-process run needs). */
export interface TrainingArgs {
  /** Run folder: config.json, metrics.jsonl, checkpoints/, chart.svg and the trained weights. */
  out: string;
  /** Optimizer steps. On resume it may grow (the run continues to the new total). */
  steps: number;
  /** Peak learning rate (after warmup). */
  lr: number;
  /** Learning-rate schedule (Hugging Face get_scheduler's formulas). */
  lr_scheduler: 'constant' | 'constant_with_warmup' | 'linear' | 'cosine';
  /** Share of the steps spent warming up linearly from 0 (rounded to whole steps). */
  warmup_ratio: number;
  /** AdamW's decoupled weight decay (Loshchilov and Hutter), on trained tensors of rank >= 2. */
  weight_decay: number;
  /** Global gradient-norm clip (0 turns clipping off). */
  max_grad_norm: number;
  /** Examples per forward pass; the step's examples are split into micro-batches whose gradients
   * are accumulated (the step is the same, memory is bounded by one micro-batch). Its default is
   * capped at batch_size. */
  micro_batch_size: number;
  /** Save a checkpoint every N steps (0: only the final one). */
  save_every: number;
  /** Checkpoints kept in the run folder (the newest ones). */
  keep_last: number;
  /** A progress line every N steps when stderr is not a terminal (CI, nohup, a log file). */
  logging_steps: number;
  /** Seed of initialisation, data order, dropout and sampling: same seed, same run. */
  seed: number;
  /** Recompute each decoder layer in the backward pass: less memory, about 1/3 slower. */
  gradient_checkpointing: boolean;
  /** tfjs backend: auto tries tfjs-node-gpu (CUDA), tfjs-node, wasm, then cpu. */
  backend: 'auto' | 'tensorflow' | 'wasm' | 'cpu';
  /** Continue the run in `out` from its newest checkpoint (settings must match the saved ones). */
  resume: boolean;
  /** Start a new run in a non-empty `out`, deleting the previous run's files there. */
  overwrite: boolean;
}

/** The criteria-injected reward model's trainer (ProMedical's Explicit Criteria Injection). */
export interface RewardConfig extends TrainingArgs {
  /** Backbone: a Hugging Face Qwen3 folder; null = the tiny random Qwen3 from the user cache. */
  model: string | null;
  /** Training records (JSONL in `format`). */
  data: string;
  /** Held-out records, evaluated every eval_every steps and at the end (null: none). */
  eval_data: string | null;
  /** Format of data and eval_data. */
  format: 'promedical' | 'healthbench' | 'kqa' | 'kqa-nli' | 'rar' | 'ultramedical';
  /** Criterion pairs per optimizer step. */
  batch_size: number;
  /** Pairs per forward pass in the held-out evaluation. */
  eval_batch_size: number;
  /** Evaluate every N steps (0: only at the end). */
  eval_every: number;
  /** Longest ECI input in tokens; the response is cut first, then earlier prompt turns. */
  max_length: number;
  /** Train LoRA adapters (q, k, v, o) of this rank instead of the whole backbone (null: full). */
  lora_rank: number | null;
  /** LoRA's alpha (null: 2 x rank). */
  lora_alpha: number | null;
  /** One head for all tiers (the ablation of ProMedical's tier heads). */
  shared_head: boolean;
  /** Weight of the pointwise BCE on the same logits next to Bradley-Terry. */
  pointwise_weight: number;
  /** TRL RewardTrainer's center_rewards_coefficient (Eisenstein et al.): c x mean((r_c + r_r)^2). */
  center_coefficient: number;
  /** Margin of each pair = this x its grade difference (0: plain Bradley-Terry; Llama 2's margin loss). */
  margin: number;
}

/** Supervised fine-tuning with TRL SFTTrainer's completion-only loss (the GRPO warm start). */
export interface SftConfig extends TrainingArgs {
  /** Starting model: a Hugging Face Qwen3 folder; null = the tiny random Qwen3. */
  model: string | null;
  /** Records whose responses are imitated. */
  data: string;
  /** Format of data. */
  format: RewardConfig['format'];
  /** Sequences per optimizer step. */
  batch_size: number;
  /** Which responses to imitate: all (mixed quality) or the best-graded one per record. */
  responses: 'all' | 'best';
  /** Longest prompt + response in tokens (the response tail is cut, its end token kept). */
  max_length: number;
}

/** GRPO guided by the reward model (DeepSeekMath's GRPO with TRL GRPOTrainer's options). */
export interface GrpoConfig extends TrainingArgs {
  /** Starting policy, a Qwen3 folder; null = a quick SFT policy trained into `<out>/start/`. */
  policy: string | null;
  /** Criteria-injected reward model folder; null = a quick one trained into `<out>/start/`. */
  rm: string | null;
  /** Records whose prompts and rubrics drive training. */
  data: string;
  /** Held-out records answered greedily before and after training and judged by the RM (null: skip). */
  eval_data: string | null;
  /** Completions per prompt, G (ProMedical and DeepSeekMath: 8). */
  num_generations: number;
  /** Prompts per optimizer step; the step has prompts_per_step x num_generations completions. */
  prompts_per_step: number;
  /** Longest completion in tokens. */
  max_new_tokens: number;
  /** Sampling temperature of the rollouts (also divides the logits of the loss, as TRL). */
  temperature: number;
  /** Nucleus sampling of the rollouts (1: off). */
  top_p: number;
  /** Top-k sampling of the rollouts (0: off). */
  top_k: number;
  /** KL coefficient to the reference policy (ProMedical and DeepSeekMath: 0.04; TRL now defaults
   * to 0); 0 skips the reference policy. */
  beta: number;
  /** The policy loss (docs/formulas.md): grpo (per-sequence mean, DeepSeekMath), bnpo, dr_grpo
   * (Dr. GRPO's constant normaliser), dapo (tokens of the step; TRL's default), cispo (MiniMax-M1's
   * clipped IS weight on the log-prob), sapo (soft gate), luspo (GSPO scaled by length), vespo
   * (a Gamma weight of the sequence ratio). */
  loss_type: GrpoLossType;
  /** sapo's gate temperature for A > 0. */
  sapo_temperature_pos: number;
  /** sapo's gate temperature for A <= 0. */
  sapo_temperature_neg: number;
  /** vespo's Gamma shape k for A >= 0. */
  vespo_k_pos: number;
  /** vespo's Gamma rate lambda for A >= 0. */
  vespo_lambda_pos: number;
  /** vespo's Gamma shape k for A < 0. */
  vespo_k_neg: number;
  /** vespo's Gamma rate lambda for A < 0. */
  vespo_lambda_neg: number;
  /** The k3 KL times the importance ratio (an unbiased KL estimate off-policy). */
  use_bias_correction_kl: boolean;
  /** DeepSeek-V3.2's off-policy sequence mask: a completion with A < 0 whose mean log-ratio of
   * sampler to policy exceeds this is left out of the loss (null: off). */
  off_policy_mask_threshold: number | null;
  /** Train only on the tokens whose entropy is in this top share of the step's (1: all tokens). */
  top_entropy_quantile: number;
  /** Entropy bonus: the loss minus this times the mean token entropy (0: off). */
  entropy_coef: number;
  /** Adapt entropy_coef each step: up by entropy_coef_delta while the entropy is at or below
   * entropy_target (and then applied), down otherwise (not applied). */
  use_adaptive_entropy: boolean;
  /** The adaptive controller's entropy target (nats per token). */
  entropy_target: number;
  /** The adaptive controller's lower bound of the coefficient. */
  entropy_coef_min: number;
  /** The adaptive controller's upper bound of the coefficient. */
  entropy_coef_max: number;
  /** The adaptive controller's step of the coefficient. */
  entropy_coef_delta: number;
  /** Lower clip range of the importance ratio (PPO's epsilon). */
  epsilon: number;
  /** Upper clip range (null: = epsilon; DAPO's clip-higher uses 0.28). */
  epsilon_high: number | null;
  /** Two-sided clipping: cap of the unclipped ratio (null: off). */
  delta: number | null;
  /** token (GRPO) or sequence (GSPO: one ratio per completion). */
  importance_sampling: 'token' | 'sequence';
  /** How advantages are scaled: group std (GRPO), batch std, or none (Dr. GRPO). */
  scale_rewards: 'group' | 'batch' | 'none';
  /** Several reward functions: sum the weighted rewards, then normalise (GRPO), or normalise each
   * function within its group, sum, then normalise over the batch (GDPO). */
  multi_objective_aggregation: 'sum_then_normalize' | 'normalize_then_sum';
  /** Score ProMedical's S1, S2 and S3 as three reward functions (weights 1, alpha, -lambda; one RM
   * pass) instead of one scalar reward, so they can be normalised apart. */
  reward_terms: boolean;
  /** DAPO's dynamic sampling: groups whose rewards all agree carry no signal; drop them and sample
   * more prompts until the step's groups are full. */
  dynamic_sampling: boolean;
  /** Extra generation rounds dynamic sampling may take per step before it trains on what it has. */
  max_resample_tries: number;
  /** Zero the loss of completions that hit max_new_tokens (DAPO). */
  mask_truncated_completions: boolean;
  /** Policy updates per generation batch (> 1 keeps the old log-probs for the ratio). */
  num_iterations: number;
  /** Optimizer steps one generation batch feeds (null: 1, or generation_batch_size's). */
  steps_per_generation: number | null;
  /** Completions per generation batch, a multiple of prompts_per_step x num_generations (null:
   * from steps_per_generation). */
  generation_batch_size: number | null;
  /** transformers' repetition penalty in sampling (1: off). */
  repetition_penalty: number;
  /** TR-DPO: every ref_model_sync_steps steps the reference becomes alpha x policy + (1 - alpha)
   * x reference (needs a reference model, i.e. full fine-tuning with beta > 0). */
  sync_ref_model: boolean;
  /** TR-DPO's alpha. */
  ref_model_mixup_alpha: number;
  /** TR-DPO's period in optimizer steps. */
  ref_model_sync_steps: number;
  /** Evaluate every N steps: num_generations_eval completions per held-out prompt, scored by the
   * reward functions, logged as eval/* (0: never). */
  eval_every: number;
  /** Completions per prompt in that evaluation (null: num_generations). */
  num_generations_eval: number | null;
  /** Where rollouts are sampled: tfjs (the live policy), llama.cpp (in process, node-llama-cpp)
   * or openai (an OpenAI-compatible server: vLLM, SGLang, llama.cpp's server). */
  engine: 'tfjs' | 'llama.cpp' | 'openai';
  /** The openai engine's base URL (e.g. http://127.0.0.1:8000). */
  engine_url: string | null;
  /** The openai engine's model name, as the server serves it (needed with engine openai). */
  engine_model: string | null;
  /** The llama.cpp engine's device. */
  engine_gpu: 'off' | 'auto' | 'cuda' | 'vulkan';
  /** The llama.cpp engine's GGUF weights: F32 samples the policy's own distribution; F16, BF16
   * and Q8_0 are faster and near it. */
  engine_dtype: 'F32' | 'F16' | 'BF16' | 'Q8_0';
  /** Sync the engine's weights to the policy every N optimizer steps (LoRA: a new adapter; full:
   * a re-export); rollouts in between are off policy by the lag (logged). */
  sync_every: number;
  /** TRL's importance-sampling correction of an engine's rollouts (its log-probs vs the trainer's). */
  importance_sampling_correction: boolean;
  /** Its mode: token or sequence ratios, truncated or masked outside the clip range. */
  importance_sampling_mode: 'token_truncate' | 'token_mask' | 'sequence_truncate' | 'sequence_mask';
  /** Its lower bound (null: none). */
  importance_sampling_clip_min: number | null;
  /** Its upper bound (null: none). */
  importance_sampling_clip_max: number | null;
  /** DAPO's soft overlong penalty with this cache in tokens (null: off). */
  overlong_cache: number | null;
  /** Train LoRA adapters on every projection; the reference is then the adapter-free policy (null: full). */
  lora_rank: number | null;
}

type Fields<C> = { [K in keyof C]-?: Field };

/** GRPO's policy losses (docs/formulas.md, "Loss types"). */
export const GRPO_LOSS_TYPES = ['grpo', 'bnpo', 'dr_grpo', 'dapo', 'cispo', 'sapo', 'luspo', 'vespo'] as const;
export type GrpoLossType = (typeof GRPO_LOSS_TYPES)[number];

const TRAINING_FIELDS: Fields<TrainingArgs> = {
  out: { kind: 'string', doc: 'Run folder: config.json, metrics.jsonl, checkpoints/, chart.svg and the trained weights.' },
  steps: { kind: 'int', min: 1, resumable: true, doc: 'Optimizer steps (may grow on --resume: the run continues to the new total).' },
  lr: { kind: 'number', min: 0, exclusiveMin: true, doc: 'Peak learning rate (after warmup).' },
  lr_scheduler: { kind: 'enum', values: ['constant', 'constant_with_warmup', 'linear', 'cosine'], doc: 'Learning-rate schedule (Hugging Face get_scheduler formulas).' },
  warmup_ratio: { kind: 'number', min: 0, max: 1, exclusiveMax: true, doc: 'Share of the steps warming up linearly from 0.' },
  weight_decay: { kind: 'number', min: 0, doc: "AdamW's decoupled weight decay (rank >= 2 tensors)." },
  max_grad_norm: { kind: 'number', min: 0, doc: 'Global gradient-norm clip (0: off).' },
  micro_batch_size: { kind: 'int', min: 1, resumable: true, doc: 'Examples per forward pass; a step accumulates the gradients of its micro-batches (same step, less memory); the default is capped at the batch size.' },
  save_every: { kind: 'int', min: 0, resumable: true, doc: 'Checkpoint every N steps (0: only the final one).' },
  keep_last: { kind: 'int', min: 1, resumable: true, doc: 'Checkpoints kept (the newest).' },
  logging_steps: { kind: 'int', min: 1, resumable: true, doc: 'A progress line every N steps when stderr is not a terminal.' },
  seed: { kind: 'int', min: 0, doc: 'Seed of initialisation, data order, dropout and sampling.' },
  gradient_checkpointing: { kind: 'boolean', resumable: true, doc: 'Recompute each layer in the backward pass: less memory, about 1/3 slower.' },
  backend: { kind: 'enum', values: ['auto', 'tensorflow', 'wasm', 'cpu'], resumable: true, doc: 'auto tries tfjs-node-gpu (CUDA), tfjs-node, wasm, then cpu.' },
  resume: { kind: 'boolean', resumable: true, doc: 'Continue the run in --out from its newest checkpoint (settings must match).' },
  overwrite: { kind: 'boolean', resumable: true, doc: "Start a new run in a non-empty --out, deleting the previous run's files there." },
};

const FORMATS = ['promedical', 'healthbench', 'kqa', 'kqa-nli', 'rar', 'ultramedical'] as const;

export const REWARD_CONFIG_FIELDS: Fields<RewardConfig> = {
  model: { kind: 'string', nullable: true, doc: 'Backbone, a Hugging Face Qwen3 folder (default: the tiny random Qwen3 in the user cache).' },
  data: { kind: 'string', doc: 'Training records (JSONL in --format).' },
  eval_data: { kind: 'string', nullable: true, doc: 'Held-out records, never trained on ("" or null: none).' },
  format: { kind: 'enum', values: FORMATS, doc: 'Format of --data and --eval-data.' },
  batch_size: { kind: 'int', min: 1, doc: 'Criterion pairs per optimizer step.' },
  eval_batch_size: { kind: 'int', min: 1, resumable: true, doc: 'Pairs per forward pass in the held-out evaluation.' },
  eval_every: { kind: 'int', min: 0, resumable: true, doc: 'Evaluate every N steps (0: only at the end).' },
  max_length: { kind: 'int', min: 16, doc: 'Longest ECI input in tokens; the response is cut first.' },
  lora_rank: { kind: 'int', min: 1, nullable: true, doc: 'Train LoRA adapters (q,k,v,o) of rank R instead of the whole backbone.' },
  lora_alpha: { kind: 'number', min: 0, exclusiveMin: true, nullable: true, doc: "LoRA's alpha (default 2 x rank)." },
  shared_head: { kind: 'boolean', doc: "One head for all tiers (the ablation of ProMedical's tier heads)." },
  pointwise_weight: { kind: 'number', min: 0, doc: 'Weight of the pointwise BCE next to Bradley-Terry.' },
  center_coefficient: { kind: 'number', min: 0, doc: "TRL's center_rewards_coefficient: c x mean((r_c + r_r)^2)." },
  margin: { kind: 'number', min: 0, doc: 'Pair margin = this x grade difference (0: plain Bradley-Terry).' },
  ...TRAINING_FIELDS,
};

export const SFT_CONFIG_FIELDS: Fields<SftConfig> = {
  model: { kind: 'string', nullable: true, doc: 'Starting model, a Hugging Face Qwen3 folder (default: the tiny random Qwen3).' },
  data: { kind: 'string', doc: 'Records whose responses are imitated.' },
  format: { kind: 'enum', values: FORMATS, doc: 'Format of --data.' },
  batch_size: { kind: 'int', min: 1, doc: 'Sequences per optimizer step.' },
  responses: { kind: 'enum', values: ['all', 'best'], doc: 'Imitate all responses (mixed quality) or the best-graded one per record.' },
  max_length: { kind: 'int', min: 16, doc: 'Longest prompt + response in tokens.' },
  ...TRAINING_FIELDS,
};

export const GRPO_CONFIG_FIELDS: Fields<GrpoConfig> = {
  policy: { kind: 'string', nullable: true, doc: 'Starting policy, a Qwen3 folder (default: a quick SFT policy trained into <out>/start).' },
  rm: { kind: 'string', nullable: true, doc: 'Reward model folder (default: a quick one trained into <out>/start).' },
  data: { kind: 'string', doc: 'Records whose prompts and rubrics drive training.' },
  eval_data: { kind: 'string', nullable: true, doc: 'Held-out records answered before and after training, judged by the RM ("": skip).' },
  num_generations: { kind: 'int', min: 2, doc: 'Completions per prompt, G (paper: 8).' },
  prompts_per_step: { kind: 'int', min: 1, doc: 'Prompts per optimizer step.' },
  max_new_tokens: { kind: 'int', min: 1, doc: 'Longest completion in tokens.' },
  temperature: { kind: 'number', min: 0, exclusiveMin: true, doc: 'Sampling temperature (also divides the logits of the loss).' },
  top_p: { kind: 'number', min: 0, max: 1, exclusiveMin: true, doc: 'Nucleus sampling (1: off).' },
  top_k: { kind: 'int', min: 0, doc: 'Top-k sampling (0: off).' },
  beta: { kind: 'number', min: 0, doc: 'KL coefficient (paper and DeepSeekMath: 0.04; TRL now defaults to 0); 0 skips the reference.' },
  loss_type: { kind: 'enum', values: GRPO_LOSS_TYPES, doc: 'Policy loss: grpo, bnpo, dr_grpo, dapo (aggregations of the clipped loss), cispo, sapo, luspo, vespo.' },
  sapo_temperature_pos: { kind: 'number', min: 0, exclusiveMin: true, doc: "sapo's gate temperature where A > 0." },
  sapo_temperature_neg: { kind: 'number', min: 0, exclusiveMin: true, doc: "sapo's gate temperature where A <= 0." },
  vespo_k_pos: { kind: 'number', min: 0, doc: "vespo's Gamma shape k where A >= 0." },
  vespo_lambda_pos: { kind: 'number', min: 0, exclusiveMin: true, doc: "vespo's Gamma rate lambda where A >= 0." },
  vespo_k_neg: { kind: 'number', min: 0, doc: "vespo's Gamma shape k where A < 0." },
  vespo_lambda_neg: { kind: 'number', min: 0, exclusiveMin: true, doc: "vespo's Gamma rate lambda where A < 0." },
  use_bias_correction_kl: { kind: 'boolean', doc: 'Multiply the k3 KL by the importance ratio (unbiased off-policy).' },
  off_policy_mask_threshold: { kind: 'number', min: 0, nullable: true, doc: "DeepSeek-V3.2's off-policy mask: drop a completion with A < 0 whose mean sampler/policy log-ratio exceeds this (default off)." },
  top_entropy_quantile: { kind: 'number', min: 0, max: 1, exclusiveMin: true, doc: 'Train only on the tokens in this top share of entropy (1: all).' },
  entropy_coef: { kind: 'number', min: 0, resumable: true, doc: 'Entropy bonus: loss minus this x mean token entropy (0: off; the start value when adaptive).' },
  use_adaptive_entropy: { kind: 'boolean', doc: 'Adapt entropy_coef each step toward entropy_target (applied only at or below it).' },
  entropy_target: { kind: 'number', min: 0, doc: 'Entropy target of the adaptive controller (nats per token).' },
  entropy_coef_min: { kind: 'number', min: 0, doc: 'Lower bound of the adaptive coefficient.' },
  entropy_coef_max: { kind: 'number', min: 0, doc: 'Upper bound of the adaptive coefficient.' },
  entropy_coef_delta: { kind: 'number', min: 0, doc: 'Step of the adaptive coefficient.' },
  epsilon: { kind: 'number', min: 0, exclusiveMin: true, doc: 'Lower clip range of the ratio.' },
  epsilon_high: { kind: 'number', min: 0, exclusiveMin: true, nullable: true, doc: "Upper clip range (default: epsilon; DAPO's clip-higher: 0.28)." },
  delta: { kind: 'number', min: 1, exclusiveMin: true, nullable: true, doc: 'Two-sided clipping: cap of the unclipped ratio (default off).' },
  importance_sampling: { kind: 'enum', values: ['token', 'sequence'], doc: 'token (GRPO) or sequence (GSPO) importance ratios.' },
  scale_rewards: { kind: 'enum', values: ['group', 'batch', 'none'], doc: 'Advantage scaling: group std, batch std, or none (Dr. GRPO).' },
  multi_objective_aggregation: { kind: 'enum', values: ['sum_then_normalize', 'normalize_then_sum'], doc: 'Several reward functions: weighted sum then normalise, or normalise each then sum (GDPO).' },
  reward_terms: { kind: 'boolean', doc: "Score the RM's S1, S2, S3 as three reward functions (weights 1, alpha, -lambda) instead of one reward." },
  dynamic_sampling: { kind: 'boolean', doc: "DAPO's dynamic sampling: drop groups whose rewards all agree and sample more prompts to fill the step." },
  max_resample_tries: { kind: 'int', min: 0, doc: 'Extra generation rounds dynamic sampling may take per step.' },
  mask_truncated_completions: { kind: 'boolean', doc: 'No loss on completions that hit --max-new-tokens (DAPO).' },
  num_iterations: { kind: 'int', min: 1, doc: 'Policy updates per generation batch.' },
  steps_per_generation: { kind: 'int', min: 1, nullable: true, doc: 'Optimizer steps one generation batch feeds (default 1).' },
  generation_batch_size: { kind: 'int', min: 1, nullable: true, doc: 'Completions per generation batch, a multiple of prompts_per_step x num_generations (instead of steps_per_generation).' },
  repetition_penalty: { kind: 'number', min: 0, exclusiveMin: true, doc: "transformers' repetition penalty in sampling (1: off)." },
  sync_ref_model: { kind: 'boolean', doc: 'TR-DPO: every ref_model_sync_steps the reference moves to alpha x policy + (1 - alpha) x reference.' },
  ref_model_mixup_alpha: { kind: 'number', min: 0, max: 1, doc: "TR-DPO's alpha." },
  ref_model_sync_steps: { kind: 'int', min: 1, doc: "TR-DPO's period in steps." },
  eval_every: { kind: 'int', min: 0, resumable: true, doc: 'Every N steps: num_generations_eval completions per held-out prompt, rewards logged as eval/* (0: never).' },
  num_generations_eval: { kind: 'int', min: 1, nullable: true, doc: 'Completions per prompt in that evaluation (default num_generations).' },
  engine: { kind: 'enum', values: ['tfjs', 'llama.cpp', 'openai'], resumable: true, doc: 'Rollout engine: tfjs (the live policy), llama.cpp (in process), openai (vLLM / SGLang / llama.cpp server).' },
  engine_url: { kind: 'string', nullable: true, resumable: true, doc: "The openai engine's base URL, e.g. http://127.0.0.1:8000." },
  engine_model: { kind: 'string', nullable: true, resumable: true, doc: "The openai engine's model name, as the server serves it." },
  engine_gpu: { kind: 'enum', values: ['off', 'auto', 'cuda', 'vulkan'], resumable: true, doc: "The llama.cpp engine's device." },
  engine_dtype: { kind: 'enum', values: ['F32', 'F16', 'BF16', 'Q8_0'], resumable: true, doc: "The llama.cpp engine's GGUF weights: F32 exact; F16, BF16, Q8_0 (8-bit, fastest on CPU) near the policy." },
  sync_every: { kind: 'int', min: 1, resumable: true, doc: "Sync the engine's weights every N steps (rollouts in between lag, logged)." },
  importance_sampling_correction: { kind: 'boolean', doc: "TRL's correction of an engine's rollouts by its log-probs vs the trainer's (without top-k and top-p only: filtered log-probs measure the dropped mass)." },
  importance_sampling_mode: { kind: 'enum', values: ['token_truncate', 'token_mask', 'sequence_truncate', 'sequence_mask'], doc: 'Token or sequence ratios, truncated or masked outside the clip range.' },
  importance_sampling_clip_min: { kind: 'number', min: 0, nullable: true, doc: 'Lower bound of the ratio (default none).' },
  importance_sampling_clip_max: { kind: 'number', min: 0, exclusiveMin: true, nullable: true, doc: 'Upper bound of the ratio.' },
  overlong_cache: { kind: 'int', min: 1, nullable: true, doc: "DAPO's soft overlong penalty with this cache in tokens (default off)." },
  lora_rank: { kind: 'int', min: 1, nullable: true, doc: 'Train LoRA adapters of rank R; the reference is the adapter-free policy.' },
  ...TRAINING_FIELDS,
};

const TRAINING_DEFAULTS = {
  lr_scheduler: 'cosine',
  weight_decay: 0,
  max_grad_norm: 1,
  keep_last: 2,
  logging_steps: 10,
  seed: 0,
  gradient_checkpointing: false,
  backend: 'auto',
  resume: false,
  overwrite: false,
} as const;

/** RewardConfig's defaults: what `npm run train-rm` runs (measured on the bundled data; the paper's
 * 8B run used lr 5e-6, batch 64, 2 epochs, max length 8192). */
export const REWARD_CONFIG_DEFAULTS: Readonly<RewardConfig> = Object.freeze({
  ...TRAINING_DEFAULTS,
  out: 'runs/train-rm',
  model: null,
  data: 'data/train.jsonl',
  eval_data: 'data/test.jsonl',
  format: 'promedical',
  steps: 120,
  lr: 2e-3,
  warmup_ratio: 0.1,
  batch_size: 16,
  micro_batch_size: 8,
  eval_batch_size: 16,
  eval_every: 40,
  save_every: 30,
  max_length: 384,
  lora_rank: null,
  lora_alpha: null,
  shared_head: false,
  pointwise_weight: 0.5,
  center_coefficient: 0,
  margin: 0,
});

/** SftConfig's defaults: what `npm run train-sft` runs. */
export const SFT_CONFIG_DEFAULTS: Readonly<SftConfig> = Object.freeze({
  ...TRAINING_DEFAULTS,
  out: 'runs/train-sft',
  model: null,
  data: 'data/train.jsonl',
  format: 'promedical',
  steps: 80,
  lr: 1e-2,
  warmup_ratio: 0.05,
  batch_size: 8,
  micro_batch_size: 2,
  save_every: 27,
  responses: 'all',
  max_length: 256,
});

/** GrpoConfig's defaults, the library's: TRL 1.10's GRPOConfig wherever TRL has the field (loss
 * dapo, beta 0, lr 1e-6, 8 completions per step, 512 new tokens, plain sampling). */
export const GRPO_CONFIG_DEFAULTS: Readonly<GrpoConfig> = Object.freeze({
  ...TRAINING_DEFAULTS,
  out: 'runs/train-grpo',
  policy: null,
  rm: null,
  data: 'data/train.jsonl',
  eval_data: 'data/test.jsonl',
  steps: 40,
  lr: 1e-6,
  lr_scheduler: 'linear',
  warmup_ratio: 0,
  micro_batch_size: 4,
  save_every: 0,
  num_generations: 8,
  prompts_per_step: 1,
  max_new_tokens: 512,
  temperature: 1,
  top_p: 1,
  top_k: 0,
  beta: 0,
  loss_type: 'dapo',
  sapo_temperature_pos: 1,
  sapo_temperature_neg: 1.05,
  vespo_k_pos: 2,
  vespo_lambda_pos: 3,
  vespo_k_neg: 3,
  vespo_lambda_neg: 2,
  use_bias_correction_kl: false,
  off_policy_mask_threshold: null,
  top_entropy_quantile: 1,
  entropy_coef: 0,
  use_adaptive_entropy: false,
  entropy_target: 0.2,
  entropy_coef_min: 0,
  entropy_coef_max: 1,
  entropy_coef_delta: 0.005,
  epsilon: 0.2,
  epsilon_high: null,
  delta: null,
  importance_sampling: 'token',
  scale_rewards: 'group',
  multi_objective_aggregation: 'sum_then_normalize',
  reward_terms: false,
  dynamic_sampling: false,
  max_resample_tries: 3,
  mask_truncated_completions: false,
  num_iterations: 1,
  steps_per_generation: null,
  generation_batch_size: null,
  repetition_penalty: 1,
  sync_ref_model: false,
  ref_model_mixup_alpha: 0.6,
  ref_model_sync_steps: 512,
  eval_every: 0,
  num_generations_eval: null,
  engine: 'tfjs',
  engine_url: null,
  engine_model: null,
  engine_gpu: 'off',
  engine_dtype: 'F32',
  sync_every: 1,
  importance_sampling_correction: true,
  importance_sampling_mode: 'sequence_mask',
  importance_sampling_clip_min: null,
  importance_sampling_clip_max: 3,
  overlong_cache: null,
  lora_rank: null,
});

/** Where `promedical train-grpo` (npm run train-grpo) departs from the library's TRL defaults: the
 * ProMedical paper's GRPO (G 8, KL coefficient 0.04, hence the per-sequence grpo loss of
 * DeepSeekMath) and settings measured on the tiny model (lr 2e-4 where the paper's 8B used 1e-6,
 * 2 prompts per step, 48 new tokens, top-k 50). */
export const GRPO_CLI_DEFAULTS: Readonly<Partial<GrpoConfig>> = Object.freeze({
  lr: 2e-4,
  lr_scheduler: 'constant',
  save_every: 13,
  prompts_per_step: 2,
  max_new_tokens: 48,
  top_k: 50,
  beta: 0.04,
  loss_type: 'grpo',
});

export type ConfigKind = 'reward' | 'sft' | 'grpo';
type ConfigOf<K extends ConfigKind> = K extends 'reward' ? RewardConfig : K extends 'sft' ? SftConfig : GrpoConfig;

export const CONFIG_FIELDS: { [K in ConfigKind]: Fields<ConfigOf<K>> } = { reward: REWARD_CONFIG_FIELDS, sft: SFT_CONFIG_FIELDS, grpo: GRPO_CONFIG_FIELDS };
export const CONFIG_DEFAULTS: { [K in ConfigKind]: Readonly<ConfigOf<K>> } = { reward: REWARD_CONFIG_DEFAULTS, sft: SFT_CONFIG_DEFAULTS, grpo: GRPO_CONFIG_DEFAULTS };
/** TRL's GRPOConfig / TrainingArguments name of each GrpoConfig field that TRL has (same meaning;
 * the fields not listed are ours). */
export const GRPO_TRL_NAMES: Readonly<Partial<Record<keyof GrpoConfig, string>>> = Object.freeze({
  out: 'output_dir', steps: 'max_steps', lr: 'learning_rate', lr_scheduler: 'lr_scheduler_type', warmup_ratio: 'warmup_ratio',
  weight_decay: 'weight_decay', max_grad_norm: 'max_grad_norm', save_every: 'save_steps', keep_last: 'save_total_limit',
  logging_steps: 'logging_steps', seed: 'seed', gradient_checkpointing: 'gradient_checkpointing', resume: 'resume_from_checkpoint',
  num_generations: 'num_generations', prompts_per_step: 'per_device_train_batch_size / num_generations', max_new_tokens: 'max_completion_length',
  temperature: 'temperature', top_p: 'top_p', top_k: 'top_k', repetition_penalty: 'repetition_penalty', beta: 'beta', loss_type: 'loss_type',
  sapo_temperature_pos: 'sapo_temperature_pos', sapo_temperature_neg: 'sapo_temperature_neg', vespo_k_pos: 'vespo_k_pos',
  vespo_lambda_pos: 'vespo_lambda_pos', vespo_k_neg: 'vespo_k_neg', vespo_lambda_neg: 'vespo_lambda_neg',
  use_bias_correction_kl: 'use_bias_correction_kl', off_policy_mask_threshold: 'off_policy_mask_threshold',
  top_entropy_quantile: 'top_entropy_quantile', entropy_coef: 'entropy_coef', use_adaptive_entropy: 'use_adaptive_entropy',
  entropy_target: 'entropy_target', entropy_coef_min: 'entropy_coef_min', entropy_coef_max: 'entropy_coef_max',
  entropy_coef_delta: 'entropy_coef_delta', epsilon: 'epsilon', epsilon_high: 'epsilon_high', delta: 'delta',
  importance_sampling: 'importance_sampling_level', scale_rewards: 'scale_rewards', multi_objective_aggregation: 'multi_objective_aggregation',
  mask_truncated_completions: 'mask_truncated_completions', num_iterations: 'num_iterations', steps_per_generation: 'steps_per_generation',
  generation_batch_size: 'generation_batch_size', sync_ref_model: 'sync_ref_model', ref_model_mixup_alpha: 'ref_model_mixup_alpha',
  ref_model_sync_steps: 'ref_model_sync_steps', eval_every: 'eval_steps', num_generations_eval: 'num_generations_eval', lora_rank: 'peft_config (r)',
  engine: 'use_vllm', engine_url: 'vllm_server_base_url', importance_sampling_correction: 'vllm_importance_sampling_correction',
  importance_sampling_mode: 'vllm_importance_sampling_mode', importance_sampling_clip_min: 'vllm_importance_sampling_clip_min',
  importance_sampling_clip_max: 'vllm_importance_sampling_clip_max',
});

/** The CLI's departures from CONFIG_DEFAULTS (the reward model and SFT commands have none). */
export const CLI_DEFAULTS: { [K in ConfigKind]: Readonly<Partial<ConfigOf<K>>> } = { reward: {}, sft: {}, grpo: GRPO_CLI_DEFAULTS };

/** What a field accepts, in words (for errors and --help). */
export function describeField(f: Field): string {
  const nul = 'nullable' in f && f.nullable ? ' or null' : '';
  switch (f.kind) {
    case 'enum':
      return `one of ${f.values.join(', ')}`;
    case 'boolean':
      return 'true or false';
    case 'string':
      return `a string${nul}`;
    case 'int':
    case 'number': {
      const what = f.kind === 'int' ? 'a whole number' : 'a finite number';
      const lo = f.min === undefined ? '' : `${f.kind === 'number' && f.exclusiveMin ? '>' : '>='} ${f.min}`;
      const hi = f.max === undefined ? '' : `${f.kind === 'number' && f.exclusiveMax ? '<' : '<='} ${f.max}`;
      return `${what}${lo || hi ? ` ${[lo, hi].filter(Boolean).join(' and ')}` : ''}${nul}`;
    }
  }
}

/** Checks one value against its field; returns the reason it is wrong, or null. */
export function fieldProblem(f: Field, v: unknown): string | null {
  if (v === null) return 'nullable' in f && f.nullable ? null : 'null is not allowed';
  switch (f.kind) {
    case 'boolean':
      return typeof v === 'boolean' ? null : 'not a boolean';
    case 'string':
      return typeof v === 'string' ? null : 'not a string';
    case 'enum':
      return typeof v === 'string' && f.values.includes(v) ? null : 'not an allowed value';
    case 'int':
    case 'number': {
      if (typeof v !== 'number' || !Number.isFinite(v)) return 'not a finite number';
      if (f.kind === 'int' && !Number.isInteger(v)) return 'not a whole number';
      const exMin = f.kind === 'number' && f.exclusiveMin;
      const exMax = f.kind === 'number' && f.exclusiveMax;
      if (f.min !== undefined && (exMin ? v <= f.min : v < f.min)) return 'out of range';
      if (f.max !== undefined && (exMax ? v >= f.max : v > f.max)) return 'out of range';
      return null;
    }
  }
}

/**
 * Merges `config` over the defaults of `kind` and validates every field: wrong types, non-integers,
 * out-of-range values, unknown enum values and unknown keys throw a ConfigError naming the field,
 * the value and what is allowed (`source`, e.g. a file name, prefixes the message). A field set
 * to undefined counts as not given. Cross-field rules: a micro-batch within the batch (its default
 * is capped at batch_size), resume and overwrite not both.
 */
export function validateConfig<K extends ConfigKind>(kind: K, config: Record<string, unknown>, source?: string): ConfigOf<K> {
  const fields = CONFIG_FIELDS[kind] as Record<string, Field>;
  const at = source ? `${source}: ` : '';
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new ConfigError(`${at}a config must be an object`);
  for (const key of Object.keys(config)) {
    if (!(key in fields)) {
      const near = Object.keys(fields).find((k) => k.replace(/_/g, '') === key.replace(/[-_]/g, '').toLowerCase());
      throw new ConfigError(`${at}unknown field "${key}"${near ? ` (did you mean "${near}"?)` : ''}`);
    }
  }
  const given = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined));
  const merged = { ...CONFIG_DEFAULTS[kind], ...given } as Record<string, unknown>;
  // The default micro-batch never exceeds a smaller batch the user asked for.
  if (!('micro_batch_size' in given) && typeof merged.batch_size === 'number' && Number.isInteger(merged.batch_size) && merged.batch_size >= 1) {
    merged.micro_batch_size = Math.min(merged.micro_batch_size as number, merged.batch_size);
  }
  for (const [key, f] of Object.entries(fields)) {
    const problem = fieldProblem(f, merged[key]);
    const v = merged[key];
    if (problem) throw new ConfigError(`${at}${key} = ${typeof v === 'number' ? String(v) : JSON.stringify(v) ?? String(v)}: ${problem}; expected ${describeField(f)}`);
  }
  const c = merged as unknown as ConfigOf<K>;
  if ('batch_size' in c && c.micro_batch_size > (c as { batch_size: number }).batch_size) {
    throw new ConfigError(`${at}micro_batch_size = ${c.micro_batch_size} is larger than batch_size = ${(c as { batch_size: number }).batch_size}`);
  }
  if (c.resume && c.overwrite) throw new ConfigError(`${at}resume and overwrite exclude each other: resume continues the run in out, overwrite deletes it`);
  if (kind === 'grpo') checkGrpoConfig(c as GrpoConfig, at);
  return c;
}

/** GrpoConfig's cross-field rules (TRL's GRPOConfig checks, and ours for the fields it lacks). */
function checkGrpoConfig(c: GrpoConfig, at: string): void {
  const fail = (why: string) => {
    throw new ConfigError(`${at}${why}`);
  };
  if (c.steps_per_generation !== null && c.generation_batch_size !== null) fail('steps_per_generation and generation_batch_size exclude each other: give one');
  const perStep = c.prompts_per_step * c.num_generations;
  if (c.generation_batch_size !== null && c.generation_batch_size % perStep !== 0) {
    fail(`generation_batch_size = ${c.generation_batch_size} is not a multiple of prompts_per_step x num_generations = ${perStep}`);
  }
  if (c.loss_type === 'luspo' && c.importance_sampling !== 'sequence') fail('loss_type = "luspo" needs importance_sampling = "sequence" (it scales GSPO\'s sequence losses by length)');
  if (c.loss_type === 'cispo' && c.epsilon_high === null) fail('loss_type = "cispo" needs epsilon_high: the cap of its importance weight (MiniMax-M1 used a large one, e.g. 5)');
  if (c.entropy_coef_min > c.entropy_coef_max) fail(`entropy_coef_min = ${c.entropy_coef_min} is above entropy_coef_max = ${c.entropy_coef_max}`);
  if (c.sync_ref_model && c.beta === 0) fail('sync_ref_model needs beta > 0: without the KL term there is no reference to sync');
  if (c.sync_ref_model && c.lora_rank !== null) fail('sync_ref_model needs a reference model of its own: with lora_rank the reference is the adapter-free policy');
  if (c.engine === 'openai' && !c.engine_url) fail('engine = "openai" needs engine_url: the server\'s base URL (e.g. http://127.0.0.1:8000)');
  if (c.engine === 'openai' && !c.engine_model) fail('engine = "openai" needs engine_model: the model name the server serves (e.g. Qwen/Qwen3-0.6B)');
  if (c.engine !== 'llama.cpp' && c.engine_dtype !== 'F32') fail(`engine_dtype = "${c.engine_dtype}" applies to engine = "llama.cpp" only (engine is "${c.engine}")`);
  if (c.engine !== 'llama.cpp' && c.engine_gpu !== 'off') fail(`engine_gpu = "${c.engine_gpu}" applies to engine = "llama.cpp" only (engine is "${c.engine}")`);
  if (c.engine_url !== null && !/^https?:\/\/[^\s/]+/.test(c.engine_url)) fail(`engine_url = ${JSON.stringify(c.engine_url)}: not an http(s) URL`);
  if (c.importance_sampling_clip_min !== null && c.importance_sampling_clip_max !== null && c.importance_sampling_clip_min > c.importance_sampling_clip_max) {
    fail(`importance_sampling_clip_min = ${c.importance_sampling_clip_min} is above importance_sampling_clip_max = ${c.importance_sampling_clip_max}`);
  }
}

/** The optimizer steps one generation batch feeds (steps_per_generation, or generation_batch_size's). */
export function stepsPerGeneration(c: GrpoConfig): number {
  if (c.generation_batch_size !== null) return c.generation_batch_size / (c.prompts_per_step * c.num_generations);
  return c.steps_per_generation ?? 1;
}

/** Fields whose value may differ when a run is resumed (cadences, the step total, the backend). */
export function resumableFields(kind: ConfigKind): Set<string> {
  return new Set(Object.entries(CONFIG_FIELDS[kind] as Record<string, Field>).filter(([, f]) => f.resumable).map(([k]) => k));
}

/** Fields that hold file or folder paths. */
export const PATH_FIELDS = ['out', 'model', 'data', 'eval_data', 'policy', 'rm'] as const;

/**
 * The config as a run folder stores it: paths relative to the run folder (`out` itself is "."),
 * so the folder can move and its config.json still works as a --config (whose paths resolve
 * against the file's folder).
 */
export function storedConfig<C extends TrainingArgs>(c: C): C {
  const out = path.resolve(c.out);
  const stored = { ...c } as unknown as Record<string, unknown>;
  for (const k of PATH_FIELDS) {
    const v = stored[k];
    if (typeof v === 'string' && v !== '') stored[k] = path.relative(out, path.resolve(v)) || '.';
  }
  return stored as unknown as C;
}
