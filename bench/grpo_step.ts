// One GRPO step of bench/run.ts, ours: trainGrpo on a random policy with fixed-length rollouts
// (no stop tokens: every completion has exactly `newTokens` tokens, as PyTorch's side in
// bench/model_pytorch.py --modes grpo), from the tfjs engine or llama.cpp (createLlamaCppEngine,
// F32, BF16 or Q8_0 GGUF). beta 0 (no reference pass), dapo, micro-batches of 4, G 8. The seconds per step are
// read from the run's metrics rows: time/rollout_s, time/logprobs_s (old log-probs: engine
// rollouts with the importance-sampling correction only), time/sync_s (the engine's weight sync),
// and `seconds` (loss + backward + optimizer step).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLlamaCppEngine, trainGrpo, type ChatTokenizer, type GrpoPrompt, type Qwen3ForCausalLM, type RolloutEngine } from '../src/index.js';

export const GRPO_GENERATIONS = 8;

/** Seconds of one step by phase: rollout, logprobs (old / reference log-probs), loss (loss +
 * backward + optimizer step), sync. */
export interface GrpoSplit { rollout: number; logprobs: number; loss: number; sync: number }

export interface GrpoStepOptions {
  engine: 'tfjs' | 'llama.cpp';
  /** Prompts per step (each gets GRPO_GENERATIONS completions). */
  prompts: number;
  newTokens: number;
  /** Untimed steps first, then `steps` timed ones. */
  warmup: number;
  steps: number;
  checkpointing: boolean;
  /** llama.cpp's CPU threads. */
  llamaThreads: number;
  /** TRL's importance-sampling correction of an engine's sampling: llama.cpp then returns each
   * sampled token's log-prob (a vocabulary sort per token in node-llama-cpp) and the trainer
   * computes its own old log-probs. No effect on tfjs rollouts (they are the trainer's own). */
  importanceSampling: boolean;
  /** llama.cpp's GGUF weights. */
  dtype: 'F32' | 'BF16' | 'Q8_0';
}

/** Prompts of 32 tokens each after the chat template (the longest one's length is returned). */
const PROMPT_TEXTS = [
  'A patient reports chest pain after exercise and shortness of breath. What should they do next now?',
  'My child has had a fever for two days and a rash. When should we see a doctor?',
];

/** Median (by total) of the timed steps, with the longest prompt's token count. */
export async function grpoStepCase(policy: Qwen3ForCausalLM, tokenizer: ChatTokenizer, o: GrpoStepOptions): Promise<{ seconds: number; split: GrpoSplit; promptTokens: number }> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-bench-grpo-'));
  // No stop tokens in the rollouts: a copy of the tokenizer without them (the GGUF file is written
  // from the unmodified one).
  const noStops = Object.assign(Object.create(Object.getPrototypeOf(tokenizer)) as ChatTokenizer, tokenizer, { stopTokenIds: [] as number[] });
  const prompts: GrpoPrompt[] = Array.from({ length: o.prompts }, (_, i) => ({ id: `p${i}`, messages: [{ role: 'user', content: PROMPT_TEXTS[i % PROMPT_TEXTS.length] }] }));
  const promptTokens = Math.max(...prompts.map((p) => tokenizer.encodeChat(p.messages, { addGenerationPrompt: true, enableThinking: false }).length));
  let engine: RolloutEngine | undefined;
  try {
    if (o.engine === 'llama.cpp') {
      engine = await createLlamaCppEngine({ policy, tokenizer, dir: path.join(tmp, 'engine'), threads: o.llamaThreads, dtype: o.dtype });
    }
    // Any reward with spread inside a group: its value does not change the step's cost.
    const parity = { name: 'parity', score: async (_p: GrpoPrompt[], _t: string[], ids: number[][]) => ids.map((x) => x.reduce((a, v) => a + (v % 2), 0)) };
    const run = await trainGrpo({
      policy, tokenizer: noStops, prompts, rewards: [parity], quiet: true, engine,
      config: {
        out: path.join(tmp, 'run'), steps: o.warmup + o.steps, lr: 1e-6, seed: 0, save_every: 0,
        num_generations: GRPO_GENERATIONS, prompts_per_step: o.prompts, max_new_tokens: o.newTokens, micro_batch_size: 4,
        temperature: 1, top_p: 1, top_k: 0, beta: 0, loss_type: 'dapo', mask_truncated_completions: false, gradient_checkpointing: o.checkpointing,
        importance_sampling_correction: o.importanceSampling,
      },
    });
    const n = (v: unknown) => (typeof v === 'number' ? v : 0);
    const steps = run.metrics.rows().filter((r) => typeof r.seconds === 'number' && r.step > o.warmup).map((r) => {
      const split: GrpoSplit = { rollout: n(r['time/rollout_s']), logprobs: n(r['time/logprobs_s']), loss: n(r.seconds), sync: n(r['time/sync_s']) };
      if (r['completions/mean_length'] !== o.newTokens) throw new Error(`grpo step ${r.step}: completions of ${String(r['completions/mean_length'])} tokens on average, not ${o.newTokens}`);
      return { split, seconds: split.rollout + split.logprobs + split.loss + split.sync };
    });
    if (steps.length !== o.steps) throw new Error(`grpo: ${steps.length} timed steps in the metrics, expected ${o.steps}`);
    steps.sort((a, b) => a.seconds - b.seconds);
    return { ...steps[Math.floor(steps.length / 2)], promptTokens };
  } finally {
    await engine?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
