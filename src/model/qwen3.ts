// The Qwen3 dense decoder (Hugging Face modeling_qwen3.py) as a causal LM.
import * as tf from '@tensorflow/tfjs';
import { attention, causalMask } from '../ops/attention.js';
import { checkpoint, recordingGradients } from '../ops/recompute.js';
import { applyRope, linear, rmsNorm, ropeTables, swiglu } from '../ops/layers.js';
import { lmHeadLogProbs } from '../ops/lm_head.js';
import type { Qwen3Config } from './config.js';

/** Keys and values of one layer for the tokens seen so far: [B, nKV, S, D] each. */
export type LayerCache = { k: tf.Tensor4D; v: tf.Tensor4D }; // a type (not interface): tidy can return it
export type KVCache = LayerCache[];

export interface ForwardOptions {
  /** [B, S] with 1 for real tokens and 0 for (left) padding, S = cached + new tokens. */
  attentionMask?: tf.Tensor2D;
  /** [B, T] positions of the new tokens; default cumsum(mask) - 1 (padding gets 1), or past + t. */
  positionIds?: tf.Tensor2D;
  /** Keys/values of earlier tokens (from a previous call); not disposed here. */
  cache?: KVCache;
}

/** The last L tokens of every row: positions T - L - 1 .. T - 2 predict them (1 <= L < T). */
export interface LastTokens {
  lastTokens: number;
}

/** Chosen positions of the flattened batch and the tokens they predict. */
export interface TargetRows {
  /** b * T + t for each predicting position t of row b (t < T - 1): [N] int32. */
  rows: tf.Tensor1D;
  /** The token each one predicts, normally inputIds[b][t + 1]: [N] int32. */
  ids: tf.Tensor1D;
}

/** Which tokens Qwen3ForCausalLM.targetLogProbs scores. */
export type CausalTargets = LastTokens | TargetRows;

export interface TargetLogProbOptions<Targets extends CausalTargets = CausalTargets> {
  /** [B, T] with 1 for real tokens and 0 for (left) padding. */
  attentionMask?: tf.Tensor2D;
  targets: Targets;
  /** Divides the logits before the softmax (default 1; the sampling temperature in GRPO). */
  temperature?: number;
  /** Also return each predicting position's entropy: true (a constant for autodiff) or
   * 'differentiable' (an entropy bonus in the loss trains through it). */
  entropy?: boolean | 'differentiable';
}

/** log p of the targets ([B, L] for lastTokens, [N] for rows), and their entropies when asked. */
export interface TargetLogProbs<T extends tf.Tensor1D | tf.Tensor2D> {
  logp: T;
  entropy?: T;
}

/** A low-rank adapter on one projection: y += scale * B(A(dropout(x))), A [r, in], B [out, r]
 * (PEFT's lora_A / lora_B layout). */
export interface LoraModule {
  A: tf.Variable;
  B: tf.Variable;
  scale: number;
  dropout: number;
}

/** The projections of a layer, by their Hugging Face module names. */
export const ATTENTION_PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const;
export const MLP_PROJECTIONS = ['gate_proj', 'up_proj', 'down_proj'] as const;

/** Every tensor of a Qwen3 checkpoint with its shape ([out, in] for linear weights, as PyTorch). */
export function qwen3TensorShapes(c: Qwen3Config): Map<string, number[]> {
  const H = c.hiddenSize, D = c.headDim, I = c.intermediateSize;
  const shapes = new Map<string, number[]>([['model.embed_tokens.weight', [c.vocabSize, H]]]);
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    shapes.set(`${p}.input_layernorm.weight`, [H]);
    shapes.set(`${p}.self_attn.q_proj.weight`, [c.numAttentionHeads * D, H]);
    shapes.set(`${p}.self_attn.k_proj.weight`, [c.numKeyValueHeads * D, H]);
    shapes.set(`${p}.self_attn.v_proj.weight`, [c.numKeyValueHeads * D, H]);
    shapes.set(`${p}.self_attn.o_proj.weight`, [H, c.numAttentionHeads * D]);
    shapes.set(`${p}.self_attn.q_norm.weight`, [D]);
    shapes.set(`${p}.self_attn.k_norm.weight`, [D]);
    shapes.set(`${p}.post_attention_layernorm.weight`, [H]);
    shapes.set(`${p}.mlp.gate_proj.weight`, [I, H]);
    shapes.set(`${p}.mlp.up_proj.weight`, [I, H]);
    shapes.set(`${p}.mlp.down_proj.weight`, [H, I]);
  }
  shapes.set('model.norm.weight', [H]);
  if (!c.tieWordEmbeddings) shapes.set('lm_head.weight', [c.vocabSize, H]);
  return shapes;
}

export class Qwen3ForCausalLM {
  readonly config: Qwen3Config;
  /** LoRA adapters by module name (e.g. "model.layers.0.self_attn.q_proj"); see lora.ts. */
  readonly adapters = new Map<string, LoraModule>();
  /** False runs the base model exactly (the GRPO reference policy without a second copy). */
  adaptersEnabled = true;
  /** True applies LoRA dropout. */
  training = false;
  /** Seeds the next LoRA dropout mask; part of a training run's saved state. */
  dropoutSeed = 0;
  /**
   * Recompute each decoder layer in the backward pass instead of keeping its activations
   * (transformers' gradient_checkpointing): about one more forward pass per step, for memory that
   * holds one [B, T, H] tensor per layer plus one layer's intermediates. It applies while a
   * gradient is recorded; decode() then returns no KV cache.
   */
  gradientCheckpointing = false;
  private readonly params: Map<string, tf.Variable>;

  /**
   * Builds the model around `weights`, keyed by Hugging Face names, in the checkpoint's layout.
   * The tensors become the variables.
   */
  constructor(config: Qwen3Config, weights: Map<string, tf.Tensor>) {
    this.config = config;
    this.params = new Map();
    const shapes = qwen3TensorShapes(config);
    const problems: string[] = [];
    for (const [name, want] of shapes) {
      const t = weights.get(name);
      if (!t) problems.push(`missing ${name}`);
      else if (!tf.util.arraysEqual(t.shape, want)) problems.push(`${name} has shape [${t.shape}], expected [${want}]`);
    }
    for (const name of weights.keys()) if (!shapes.has(name)) problems.push(`unexpected ${name}`);
    if (problems.length) throw new Error(`Qwen3 weights do not fit the config:\n  ${problems.join('\n  ')}`);
    for (const name of shapes.keys()) {
      // Variable names are engine-global, so they are left generated; our map holds the HF names.
      this.params.set(name, tf.variable(weights.get(name)!, true));
    }
  }

  /** A randomly initialised model (normal(0, 0.02) like transformers, norms at one), seeded. */
  static random(config: Qwen3Config, seed = 0): Qwen3ForCausalLM {
    const weights = new Map<string, tf.Tensor>();
    let i = 0;
    for (const [name, shape] of qwen3TensorShapes(config)) {
      // Per-tensor seeds start at 1: tf.randomNormal treats a seed of 0 as "unseeded".
      weights.set(name, shape.length === 1 ? tf.ones(shape) : tf.randomNormal(shape, 0, 0.02, 'float32', seed * 100_003 + ++i));
    }
    const model = new Qwen3ForCausalLM(config, weights);
    tf.dispose([...weights.values()]);
    return model;
  }

  /** Parameters keyed by their Hugging Face tensor names, in the checkpoint's layout. */
  namedParameters(): Map<string, tf.Variable> {
    return new Map(this.params);
  }

  /** What trains, by name: the adapters when there are any (PEFT's names without the
   * base_model.model. prefix, e.g. model.layers.0.self_attn.q_proj.lora_A.weight), else every
   * parameter. */
  trainableParameters(): Map<string, tf.Variable> {
    if (this.baseTrainable) return this.namedParameters();
    const out = new Map<string, tf.Variable>();
    for (const [module, a] of this.adapters) {
      out.set(`${module}.lora_A.weight`, a.A);
      out.set(`${module}.lora_B.weight`, a.B);
    }
    return out;
  }

  trainableVariables(): tf.Variable[] {
    return [...this.trainableParameters().values()];
  }

  /** Logits [B, T, V] for the new tokens. */
  forward(inputIds: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor3D {
    return tf.tidy(() => this.logits(this.decode(inputIds, opts).hidden));
  }

  /** Final-normed hidden states [B, T, H] (what a reward head reads). */
  hiddenStates(inputIds: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor3D {
    return tf.tidy(() => this.decode(inputIds, opts).hidden);
  }

  /** LM head: hidden [..., H] -> logits [..., V] (tied heads read the embedding matrix). */
  logits(hidden: tf.Tensor): tf.Tensor3D {
    return (this.config.tieWordEmbeddings
      ? linear(hidden, this.p('model.embed_tokens.weight'), this.baseTrainable)
      : this.project('lm_head', hidden)) as tf.Tensor3D;
  }

  /**
   * The causal LM's log-probabilities of target tokens: log softmax(logits_t / temperature)[y],
   * where position t's logits predict token t + 1. The LM head and the log-softmax run fused
   * (src/ops/lm_head.ts) on the predicting positions only: no [B, T, V] logits exist, and no
   * [N, V] block or its gradient outlives one block. Differentiable in the trainable parameters.
   *
   * `targets` (see CausalTargets) says which tokens:
   * - `{ lastTokens: L }`: the last L tokens of every row (left-padded completions); returns [B, L].
   * - `{ rows, ids }`: any positions of the flattened batch; returns [N], in the order of `rows`.
   *
   * With `entropy`, also each predicting position's entropy -sum p log p at that temperature, in
   * the shape of `logp`, from the same fused pass (differentiated only when 'differentiable').
   */
  targetLogProbs(inputIds: tf.Tensor2D, opts: TargetLogProbOptions<LastTokens>): TargetLogProbs<tf.Tensor2D>;
  targetLogProbs(inputIds: tf.Tensor2D, opts: TargetLogProbOptions<TargetRows>): TargetLogProbs<tf.Tensor1D>;
  targetLogProbs(inputIds: tf.Tensor2D, opts: TargetLogProbOptions): TargetLogProbs<tf.Tensor1D | tf.Tensor2D>;
  targetLogProbs(inputIds: tf.Tensor2D, opts: TargetLogProbOptions): TargetLogProbs<tf.Tensor1D | tf.Tensor2D> {
    const { targets, attentionMask, temperature, entropy } = opts;
    const [B, T] = inputIds.shape;
    if ('lastTokens' in targets && !(Number.isInteger(targets.lastTokens) && targets.lastTokens >= 1 && targets.lastTokens < T)) {
      throw new Error(`targetLogProbs: lastTokens must be an integer in [1, ${T - 1}] for ${T} tokens, got ${targets.lastTokens}`);
    }
    return tf.tidy(() => {
      const hidden = this.decode(inputIds, { attentionMask }).hidden; // [B, T, H]
      const H = hidden.shape[2];
      let x: tf.Tensor2D; // [N, H]: the predicting positions
      let ids: tf.Tensor1D; // [N]: the tokens they predict
      if ('lastTokens' in targets) {
        // Positions T - L - 1 .. T - 2 predict tokens T - L .. T - 1.
        const L = targets.lastTokens;
        x = hidden.slice([0, T - L - 1, 0], [B, L, H]).reshape([B * L, H]);
        ids = inputIds.slice([0, T - L], [B, L]).reshape([B * L]).toInt() as tf.Tensor1D;
      } else {
        x = tf.gather(hidden.reshape([B * T, H]), targets.rows) as tf.Tensor2D;
        ids = targets.ids;
      }
      const head = this.p(this.config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight') as tf.Tensor2D;
      const r = lmHeadLogProbs(x, head, ids, { temperature, entropy, trainWeight: this.baseTrainable });
      const shape = 'lastTokens' in targets ? [B, targets.lastTokens] : [r.logp.shape[0]];
      const logp = r.logp.reshape(shape) as tf.Tensor1D | tf.Tensor2D;
      return r.entropy ? { logp, entropy: r.entropy.reshape(shape) as tf.Tensor1D | tf.Tensor2D } : { logp };
    });
  }

  /** Base weights train unless adapters are attached (then only the adapters do). */
  get baseTrainable(): boolean {
    return this.adapters.size === 0;
  }

  /**
   * The decoder proper: hidden states of the new tokens and the cache extended by them. The
   * returned cache tensors belong to the caller (dispose them, or pass them to the next call).
   */
  decode(inputIds: tf.Tensor2D, opts: ForwardOptions = {}): { hidden: tf.Tensor3D; cache: KVCache } {
    return tf.tidy(() => {
      const c = this.config;
      const [B, T] = inputIds.shape;
      const past = opts.cache?.[0]?.k.shape[2] ?? 0;
      const S = past + T;
      if (opts.attentionMask && (opts.attentionMask.shape[0] !== B || opts.attentionMask.shape[1] !== S)) {
        throw new Error(`attentionMask has shape [${opts.attentionMask.shape}], expected [${B}, ${S}] (cached + new tokens)`);
      }
      const positions = opts.positionIds ?? defaultPositions(B, T, past, opts.attentionMask);
      const { cos, sin } = ropeTables(positions, c.headDim, c.ropeTheta);
      const mask = causalMask(B, T, S, opts.attentionMask ?? null);

      let x = tf.gather(this.p('model.embed_tokens.weight'), inputIds.toInt()) as tf.Tensor3D; // [B, T, H]
      const cache: KVCache = [];
      const recompute = this.gradientCheckpointing && !opts.cache && recordingGradients();
      for (let i = 0; i < c.numHiddenLayers; i++) {
        if (recompute) {
          x = checkpoint(this.replayableLayer(i), x, [cos, sin, mask], this.layerTrainables(i)) as tf.Tensor3D;
        } else {
          // A tidy per layer: without it every layer's intermediates live until the whole pass
          // ends (16 rows x 32 tokens of a 0.6B model: 2.7 GB of them, past wasm's heap). What a
          // gradient needs, the tape keeps.
          const out = tf.tidy(() => this.decoderLayer(i, x, cos, sin, mask, opts.cache?.[i]));
          x = out.x;
          cache.push(out.kv);
        }
      }
      return { hidden: rmsNorm(x, this.p('model.norm.weight'), c.rmsNormEps) as tf.Tensor3D, cache };
    });
  }

  /** One decoder layer: x + attention(norm(x)), then + mlp(norm(.)). */
  private decoderLayer(i: number, x: tf.Tensor3D, cos: tf.Tensor4D, sin: tf.Tensor4D, mask: tf.Tensor4D, past?: LayerCache): { x: tf.Tensor3D; kv: LayerCache } {
    const eps = this.config.rmsNormEps;
    const p = `model.layers.${i}`;
    const { out, kv } = this.selfAttention(p, rmsNorm(x, this.p(`${p}.input_layernorm.weight`), eps), cos, sin, mask, past);
    const y = x.add(out);
    const h = rmsNorm(y, this.p(`${p}.post_attention_layernorm.weight`), eps);
    const mlp = this.project(`${p}.mlp.down_proj`, swiglu(this.project(`${p}.mlp.gate_proj`, h), this.project(`${p}.mlp.up_proj`, h)));
    return { x: y.add(mlp) as tf.Tensor3D, kv };
  }

  /**
   * Layer i as a function of its input for checkpoint(). Its recomputation in the backward pass
   * runs in the state the forward pass saw (adapters on or off, training, the LoRA dropout seed,
   * so the same masks are drawn) and then puts the model's current state back.
   */
  private replayableLayer(i: number): (x: tf.Tensor, context: tf.Tensor[]) => tf.Tensor {
    const seen = { seed: this.dropoutSeed, adapters: this.adaptersEnabled, training: this.training };
    let replay = false;
    return (x, [cos, sin, mask]) => {
      const now = { seed: this.dropoutSeed, adapters: this.adaptersEnabled, training: this.training };
      Object.assign(this, { dropoutSeed: seen.seed, adaptersEnabled: seen.adapters, training: seen.training });
      try {
        return this.decoderLayer(i, x as tf.Tensor3D, cos as tf.Tensor4D, sin as tf.Tensor4D, mask as tf.Tensor4D).x;
      } finally {
        // The forward pass leaves the seed advanced past this layer's masks; a replay changes nothing.
        if (replay) Object.assign(this, { dropoutSeed: now.seed, adaptersEnabled: now.adapters, training: now.training });
        replay = true;
      }
    };
  }

  /** The variables of layer i that receive gradients (its adapters, or all its weights). */
  private layerTrainables(i: number): tf.Variable[] {
    const prefix = `model.layers.${i}.`;
    if (this.baseTrainable) return [...this.params].filter(([name]) => name.startsWith(prefix)).map(([, v]) => v);
    if (!this.adaptersEnabled) return [];
    return [...this.adapters].filter(([module]) => module.startsWith(prefix)).flatMap(([, a]) => [a.A, a.B]);
  }

  private selfAttention(
    p: string,
    h: tf.Tensor,
    cos: tf.Tensor4D,
    sin: tf.Tensor4D,
    mask: tf.Tensor4D,
    past: LayerCache | undefined,
  ): { out: tf.Tensor; kv: LayerCache } {
    const c = this.config;
    const [B, T] = h.shape as [number, number, number];
    const D = c.headDim;
    const heads = (name: string, n: number, norm: string | null) => {
      let t = this.project(`${p}.self_attn.${name}`, h).reshape([B, T, n, D]);
      if (norm) t = rmsNorm(t, this.p(`${p}.self_attn.${norm}.weight`), c.rmsNormEps); // before RoPE
      return t.transpose([0, 2, 1, 3]) as tf.Tensor4D; // [B, n, T, D]
    };
    const q = applyRope(heads('q_proj', c.numAttentionHeads, 'q_norm'), cos, sin);
    let k = applyRope(heads('k_proj', c.numKeyValueHeads, 'k_norm'), cos, sin);
    let v = heads('v_proj', c.numKeyValueHeads, null);
    if (past) {
      k = tf.concat([past.k, k], 2);
      v = tf.concat([past.v, v], 2);
    }
    const att = attention(q, k, v, mask).transpose([0, 2, 1, 3]).reshape([B, T, c.numAttentionHeads * D]);
    return { out: this.project(`${p}.self_attn.o_proj`, att), kv: { k, v } };
  }

  /** A projection by module name, with its LoRA adapter when one is attached and enabled. */
  private project(module: string, x: tf.Tensor): tf.Tensor {
    const y = linear(x, this.p(`${module}.weight`), this.baseTrainable);
    const lora = this.adaptersEnabled ? this.adapters.get(module) : undefined;
    if (!lora) return y;
    const xin = this.training && lora.dropout > 0 ? tf.dropout(x, lora.dropout, undefined, this.dropoutSeed++) : x;
    return y.add(linear(linear(xin, lora.A), lora.B).mul(lora.scale));
  }

  private p(name: string): tf.Variable {
    const v = this.params.get(name);
    if (!v) throw new Error(`no parameter ${name}`);
    return v;
  }

  /** Frees every variable (base and adapters). */
  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    for (const a of this.adapters.values()) tf.dispose([a.A, a.B]);
    this.params.clear();
    this.adapters.clear();
  }
}

/** position_ids = cumsum(mask) - 1 with padding set to 1 (as transformers), else past + t. */
function defaultPositions(B: number, T: number, past: number, mask: tf.Tensor2D | undefined): tf.Tensor2D {
  return tf.tidy(() => {
    if (!mask) return tf.range(past, past + T, 1, 'int32').expandDims(0).tile([B, 1]) as tf.Tensor2D;
    const m = mask.toInt();
    const pos = tf.cumsum(m, 1).sub(1);
    const full = tf.where(m.cast('bool'), pos, tf.onesLike(pos));
    return full.slice([0, full.shape[1]! - T], [B, T]) as tf.Tensor2D;
  });
}
