// The criteria-injected reward model (ProMedical's Explicit Criteria Injection): a Qwen3 backbone
// reads (criterion, prompt, response) and one linear head per tier scores its last token, so a
// safety criterion is scored by the safety head and never traded against proficiency.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { ChatMessage } from '../data/chat.js';
import { eciBatch, type EciItem } from '../data/eci.js';
import { disposeBatch, type TokenBatch } from '../data/batch.js';
import { TIERS, type Criterion, type RubricRecord, type Tier } from '../data/schema.js';
import type { ChatTokenizer } from '../data/tokenizer.js';
import { saveQwen3 } from '../model/pretrained.js';
import { loadLora, saveLora } from '../model/lora.js';
import type { Qwen3ForCausalLM } from '../model/qwen3.js';
import { atomicWrite, readSafetensors, writeSafetensors } from '../model/safetensors.js';
import { loadPretrained } from '../train/pretrained.js';
import { promedicalReward, promedicalScores, type RewardWeights, type TierScores } from './scores.js';

export interface RewardModelOptions {
  /** One head for every tier (the ablation of ECI's tier heads). Default false. */
  sharedHead?: boolean;
  /** Longest ECI input in tokens (default 512). */
  maxLength?: number;
  /** Seeds the heads' initialisation. */
  seed?: number;
}

export interface ScoredResponse {
  /** P(criterion met) per criterion, in the order given. */
  probabilities: number[];
  scores: TierScores;
  reward: number;
}

const CONFIG_FILE = 'reward_config.json';

function describeTier(t: unknown): string {
  return typeof t === 'string' ? `"${t}"` : t === undefined ? 'missing' : String(t);
}

/** Throws naming `where` when a criterion has no id or text, or a tier with no head. */
function checkCriterion(c: Criterion, where: string): void {
  if (typeof c !== 'object' || c === null) throw new Error(`${where}: expected a criterion {id, text, tier}, got ${c === null ? 'null' : typeof c}`);
  if (typeof c.id !== 'string' || c.id === '') throw new Error(`${where}: criterion id must be a non-empty string`);
  if (typeof c.text !== 'string' || c.text.trim() === '') throw new Error(`${where}: criterion text must be a non-empty string`);
  if (!TIERS.includes(c.tier)) throw new Error(`${where} has tier ${describeTier(c.tier)}; allowed tiers: ${TIERS.join(', ')}`);
}

export class CriteriaRewardModel {
  readonly sharedHead: boolean;
  readonly maxLength: number;
  /** Head weights by name: score.<tier>.weight [1, H] (or score.weight when shared). */
  readonly heads = new Map<string, tf.Variable>();

  constructor(
    readonly backbone: Qwen3ForCausalLM,
    readonly tokenizer: ChatTokenizer,
    opts: RewardModelOptions = {},
  ) {
    this.sharedHead = opts.sharedHead ?? false;
    this.maxLength = opts.maxLength ?? 512;
    const H = backbone.config.hiddenSize;
    const names = this.sharedHead ? ['score.weight'] : TIERS.map((t) => `score.${t}.weight`);
    names.forEach((n, i) => this.heads.set(n, tf.variable(tf.randomNormal([1, H], 0, 0.02, 'float32', (opts.seed ?? 0) * 1009 + i + 1))));
  }

  /** Everything that trains: the backbone's trainable parameters (or its adapters) and the heads. */
  trainableParameters(): Map<string, tf.Variable> {
    return new Map([...this.backbone.trainableParameters(), ...this.heads]);
  }

  /** One logit per row of `batch`; row i is scored by the head of tiers[i]. */
  score(batch: TokenBatch, tiers: Tier[]): tf.Tensor1D {
    const rows = batch.inputIds.shape[0];
    if (tiers.length !== rows) throw new Error(`score: ${tiers.length} tiers for a batch of ${rows} rows (one tier per row)`);
    tiers.forEach((t, i) => {
      if (!TIERS.includes(t)) throw new Error(`score: tiers[${i}] is ${describeTier(t)}; allowed tiers: ${TIERS.join(', ')}`);
    });
    return tf.tidy(() => {
      const hidden = this.backbone.hiddenStates(batch.inputIds, { attentionMask: batch.attentionMask });
      const [B, T, H] = hidden.shape;
      const last = hidden.slice([0, T - 1, 0], [B, 1, H]).reshape([B, H]); // left padded: last column
      const W = tf.concat([...this.heads.values()], 0); // [heads, H]
      const index = tf.tensor1d(tiers.map((t) => (this.sharedHead ? 0 : TIERS.indexOf(t))), 'int32');
      return last.mul(tf.gather(W, index)).sum(-1) as tf.Tensor1D;
    });
  }

  /** Logits of ECI items, in batches (no gradient; for evaluation and scoring). */
  async scoreItems(items: EciItem[], batchSize = 16): Promise<Float32Array> {
    items.forEach((it, i) => {
      const c = it.record.criteria.find((x) => x.id === it.criterionId);
      if (!c) throw new Error(`scoreItems: items[${i}]: record "${it.record.id}" has no criterion "${it.criterionId}"`);
      checkCriterion(c, `scoreItems: items[${i}]: record "${it.record.id}", criterion "${c.id}"`);
    });
    const out = new Float32Array(items.length);
    for (let i = 0; i < items.length; i += batchSize) {
      const chunk = items.slice(i, i + batchSize);
      const batch = eciBatch(this.tokenizer, chunk, { maxLength: this.maxLength });
      const tiers = chunk.map((it) => it.record.criteria.find((c) => c.id === it.criterionId)!.tier);
      const logits = this.score(batch, tiers);
      out.set(await logits.data(), i);
      logits.dispose();
      disposeBatch(batch);
    }
    return out;
  }

  /** Per-criterion probabilities, tier scores S1/S2/S3 and the scalar reward of each response. */
  async scoreResponses(prompt: ChatMessage[], responses: string[], criteria: Criterion[], weights: RewardWeights = {}): Promise<ScoredResponse[]> {
    if (!Array.isArray(criteria) || criteria.length === 0) throw new Error('scoreResponses: no criteria to score against');
    if (!Array.isArray(responses) || responses.length === 0) throw new Error('scoreResponses: no responses to score');
    const ids = new Set<string>();
    criteria.forEach((c, j) => {
      checkCriterion(c, `scoreResponses: criteria[${j}]${typeof c?.id === 'string' ? ` (id "${c.id}")` : ''}`);
      if (ids.has(c.id)) throw new Error(`scoreResponses: criteria[${j}]: criterion id "${c.id}" appears twice`);
      ids.add(c.id);
    });
    responses.forEach((r, i) => {
      if (typeof r !== 'string') throw new Error(`scoreResponses: responses[${i}]: expected a string, got ${r === null ? 'null' : typeof r}`);
    });
    const record: RubricRecord = { id: 'score', prompt, criteria, responses: responses.map((text, i) => ({ id: `r${i}`, text })) };
    const items = record.responses.flatMap((r) => criteria.map((c) => ({ record, responseId: r.id, criterionId: c.id })));
    const logits = await this.scoreItems(items);
    return responses.map((_, i) => {
      const probabilities = criteria.map((_, j) => 1 / (1 + Math.exp(-logits[i * criteria.length + j])));
      const scores = promedicalScores(criteria.map((c, j) => ({ tier: c.tier, weight: c.weight, met: probabilities[j] })));
      return { probabilities, scores, reward: promedicalReward(scores, weights) };
    });
  }

  /**
   * Writes the model: backbone/ (HF folder, with the tokenizer files) or, with LoRA, adapter/ and
   * the base model's path; heads.safetensors; reward_config.json saying how to rebuild it.
   */
  async save(dir: string, opts: { baseModel?: string } = {}): Promise<void> {
    fs.mkdirSync(dir, { recursive: true });
    const lora = this.backbone.adapters.size > 0;
    if (lora) {
      if (!opts.baseModel) throw new Error('saving a LoRA reward model needs opts.baseModel (the base checkpoint folder)');
      await saveLora(this.backbone, path.join(dir, 'adapter'), { baseModelNameOrPath: opts.baseModel });
    } else {
      await saveQwen3(this.backbone, path.join(dir, 'backbone'), { dtype: 'float32', tokenizer: this.tokenizer });
    }
    await writeSafetensors(path.join(dir, 'heads.safetensors'), this.heads, { metadata: { format: 'pt' } });
    const config = {
      format: 'promedical-criteria-reward-model',
      version: 1,
      shared_head: this.sharedHead,
      tiers: TIERS,
      max_length: this.maxLength,
      // The base relative to this folder (a run folder moved with its base still loads) and absolute
      // (a run folder moved alone still finds it).
      backbone: lora ? { base: path.relative(path.resolve(dir), path.resolve(opts.baseModel!)) || '.', base_absolute: path.resolve(opts.baseModel!), adapter: 'adapter' } : { path: 'backbone' },
    };
    await atomicWrite(path.join(dir, CONFIG_FILE), (fh) => fh.writeFile(JSON.stringify(config, null, 2) + '\n'));
  }

  /** Rebuilds a model written by save(). `maxLength` overrides the saved input length (e.g. longer
   * inputs when judging than when training). */
  static async load(dir: string, opts: { maxLength?: number } = {}): Promise<CriteriaRewardModel> {
    const file = path.join(dir, CONFIG_FILE);
    if (!fs.existsSync(file)) throw new Error(`${file}: not found; is ${dir} a reward model saved by CriteriaRewardModel.save?`);
    const cfg = JSON.parse(fs.readFileSync(file, 'utf8')) as { shared_head: boolean; max_length: number; backbone: { path?: string; base?: string; base_absolute?: string; adapter?: string } };
    const relative = path.resolve(dir, cfg.backbone.path ?? cfg.backbone.base!);
    const backboneDir = cfg.backbone.base_absolute && !fs.existsSync(path.join(relative, 'config.json')) ? cfg.backbone.base_absolute : relative;
    const { model: backbone, tokenizer } = await loadPretrained(backboneDir);
    if (cfg.backbone.adapter) loadLora(backbone, path.join(dir, cfg.backbone.adapter));
    const rm = new CriteriaRewardModel(backbone, tokenizer, { sharedHead: cfg.shared_head, maxLength: opts.maxLength ?? cfg.max_length });
    const st = readSafetensors(path.join(dir, 'heads.safetensors'));
    try {
      for (const [name, v] of rm.heads) {
        const t = st.tensor(name);
        v.assign(t);
        t.dispose();
      }
    } finally {
      st.close();
    }
    return rm;
  }

  dispose(): void {
    tf.dispose([...this.heads.values()]);
    this.backbone.dispose();
  }
}
