// Supervised fine-tuning with TRL SFTTrainer's completion-only loss: the prompt is rendered with
// the chat template (generation prompt included), the response follows, and only response tokens
// (and the closing <|im_end|>) are predicted.
import * as tf from '@tensorflow/tfjs';
import type { ChatMessage } from '../data/chat.js';
import { disposeBatch, padBatch } from '../data/batch.js';
import { EpochSampler, type EpochPosition } from '../data/rng.js';
import type { RubricRecord } from '../data/schema.js';
import type { ChatTokenizer } from '../data/tokenizer.js';
import type { Qwen3ForCausalLM } from '../model/qwen3.js';
import { validateConfig, type SftConfig } from './config.js';
import { runOptions, TrainingRun } from './run.js';

export interface SftExample {
  ids: number[];
  /** 1 where the token is a training target (the response and its end token). */
  targets: number[];
}

/** Token ids of prompt + response, with the response marked as the target. Long inputs lose the
 * response tail first (keeping its end token), then fail if the prompt alone does not fit. The
 * work is bounded by maxLength: only the response's first tokens are computed (encodeHead), and a
 * prompt too long to fit in any case is not tokenized (fitsIn). */
export function sftExample(tok: ChatTokenizer, prompt: ChatMessage[], response: string, maxLength: number): SftExample {
  const rendered = tok.applyChatTemplate(prompt, { addGenerationPrompt: true, enableThinking: false });
  if (!tok.fitsIn(rendered, maxLength - 2)) throw new Error(`SFT example cannot fit in ${maxLength} tokens: the prompt alone takes more than that (${rendered.length} characters)`);
  const promptIds = tok.encode(rendered);
  const end = tok.tokenToId('<|im_end|>') ?? tok.eosTokenId;
  const room = maxLength - promptIds.length - 1;
  if (room < 1) throw new Error(`SFT example cannot fit in ${maxLength} tokens: the prompt alone takes ${promptIds.length}`);
  const completion = tok.encodeHead(response, room).ids;
  const ids = [...promptIds, ...completion, end];
  return { ids, targets: ids.map((_, i) => (i >= promptIds.length ? 1 : 0)) };
}

export interface SftOptions {
  model: Qwen3ForCausalLM;
  tokenizer: ChatTokenizer;
  records: RubricRecord[];
  /** The run's settings; missing fields take SFT_CONFIG_DEFAULTS (validated: ConfigError). */
  config: Partial<SftConfig>;
  /** The caller opened the run folder already (openRunDir). */
  prepared?: boolean;
  /** No progress output. */
  quiet?: boolean;
}

/** Rows of the flattened [B * T] positions that predict a target token, and those tokens. */
export interface TargetPositions {
  /** b * T + t for each position t whose next token (t + 1) is a target: [N] int32. */
  rows: tf.Tensor1D;
  /** The target tokens ids[b][t + 1]: [N] int32. */
  ids: tf.Tensor1D;
}

/** The positions of a left-padded batch (ids [B, T], targets right-aligned like the ids) that
 * predict a target token. */
export function targetPositions(ids: number[][], targets: number[][]): TargetPositions {
  const rows: number[] = [];
  const next: number[] = [];
  const T = ids[0].length;
  ids.forEach((row, b) => {
    for (let t = 0; t + 1 < T; t++) if (targets[b][t + 1] === 1) (rows.push(b * T + t), next.push(row[t + 1]));
  });
  return { rows: tf.tensor1d(rows, 'int32'), ids: tf.tensor1d(next, 'int32') };
}

/**
 * Mean next-token cross-entropy over the target tokens (SFT's completion-only loss), through
 * model.targetLogProbs: the fused LM head runs on the target-predicting positions only, so prompt
 * and padding positions never become [tokens, vocabulary] logits, which is most of the tiny
 * model's cost and of a real one's memory.
 */
export function targetTokenLoss(model: Qwen3ForCausalLM, batch: { inputIds: tf.Tensor2D; attentionMask: tf.Tensor2D }, at: TargetPositions): tf.Scalar {
  return tf.tidy(() => model.targetLogProbs(batch.inputIds, { attentionMask: batch.attentionMask, targets: at }).logp.mean().neg() as tf.Scalar);
}

/** Mean grade of a response over the criteria it is graded on (1 for ungraded responses). */
function quality(r: RubricRecord['responses'][number]): number {
  const g = Object.values(r.grades ?? {}).map((v) => (typeof v === 'boolean' ? (v ? 1 : 0) : v));
  return g.length ? g.reduce((a, v) => a + v, 0) / g.length : 1;
}

export async function trainSft(opts: SftOptions): Promise<TrainingRun> {
  const c = validateConfig('sft', opts.config);
  const examples = opts.records.flatMap((rec) => {
    const chosen = c.responses === 'best' ? [rec.responses.reduce((a, b) => (quality(b) > quality(a) ? b : a))] : rec.responses;
    return chosen.map((r) => sftExample(opts.tokenizer, rec.prompt, r.text, c.max_length));
  });
  if (examples.length === 0) throw new Error('trainSft: no responses to train on');
  const batchSize = c.batch_size;
  const micro = c.micro_batch_size;
  const run = await TrainingRun.start({ ...runOptions('sft', c, opts), model: opts.model, label: 'SFT' });
  const sampler = new EpochSampler(examples.length, `${c.seed}:sft`, run.data as EpochPosition | undefined);
  const pad = opts.tokenizer.padTokenId;
  while (!run.done) {
    const picked = sampler.take(batchSize).map((i) => examples[i]);
    run.data = sampler.position;
    const count = (e: SftExample) => e.targets.reduce((x, y) => x + y, 0);
    const totalTargets = picked.reduce((a, e) => a + count(e), 0);
    const micros = [];
    for (let i = 0; i < picked.length; i += micro) {
      const group = picked.slice(i, i + micro);
      const batch = padBatch(group.map((e) => e.ids), pad);
      const T = batch.inputIds.shape[1];
      const leftPad = (xs: number[], fill: number) => [...Array(T - xs.length).fill(fill), ...xs];
      const at = targetPositions(group.map((e) => leftPad(e.ids, pad)), group.map((e) => leftPad(e.targets, 0)));
      const share = group.reduce((a, e) => a + count(e), 0) / Math.max(1, totalTargets);
      micros.push({ batch, at, share });
    }
    await run.trainStep(
      micros.map((mb) => ({
        weight: mb.share, // token-level mean over the whole step, as TRL averages over target tokens
        loss: () => targetTokenLoss(opts.model, mb.batch, mb.at),
      })),
      { tokens: micros.reduce((a, mb) => a + mb.batch.inputIds.size, 0) },
    );
    for (const mb of micros) {
      disposeBatch(mb.batch);
      tf.dispose([mb.at.rows, mb.at.ids]);
    }
  }
  return run;
}
