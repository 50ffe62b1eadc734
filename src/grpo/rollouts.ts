// Rollouts: G sampled completions per prompt, with TRL's completion masks (tokens up to and
// including the first end-of-sequence token) and truncation detection.
import type { GenerateOptions } from '../model/generate.js';
import { generate } from '../model/generate.js';
import type { Qwen3ForCausalLM } from '../model/qwen3.js';

export interface Rollouts {
  /** Prompt index of each completion (G consecutive completions per prompt). */
  promptIndex: number[];
  /** Completion token ids, each padded with `pad` to the longest: [B, L]. */
  completions: number[][];
  /** 1 up to and including the first stop token, 0 after: [B, L]. */
  mask: number[][];
  /** Completions that ended without a stop token (hit maxNewTokens). */
  truncated: boolean[];
  /** Unpadded lengths (counted by the mask). */
  lengths: number[];
}

export interface RolloutOptions extends GenerateOptions {
  /** Completions per prompt (G). */
  numGenerations: number;
  /** Zero the whole mask of truncated completions (TRL's mask_truncated_completions). */
  maskTruncatedCompletions?: boolean;
}

/** Masks, lengths and truncation flags of raw completions (as `generate` returns them). */
export function completionMasks(completions: number[][], stopTokenIds: number[], pad: number, maskTruncated = false): Omit<Rollouts, 'promptIndex'> {
  const stops = new Set(stopTokenIds);
  const L = Math.max(1, ...completions.map((c) => c.length));
  const out: Omit<Rollouts, 'promptIndex'> = { completions: [], mask: [], truncated: [], lengths: [] };
  for (const c of completions) {
    const end = c.findIndex((id) => stops.has(id));
    const truncated = end < 0;
    const length = truncated ? c.length : end + 1;
    const row = Array.from({ length: L }, (_, j) => (j < c.length ? c[j] : pad));
    const mask = Array.from({ length: L }, (_, j) => (j < length && !(truncated && maskTruncated) ? 1 : 0));
    out.completions.push(row);
    out.mask.push(mask);
    out.truncated.push(truncated);
    out.lengths.push(length);
  }
  return out;
}

/** Samples `numGenerations` completions for every prompt, group after group. */
export async function rollout(model: Qwen3ForCausalLM, prompts: number[][], opts: RolloutOptions): Promise<Rollouts> {
  const G = opts.numGenerations;
  if (!(Number.isInteger(G) && G > 0)) throw new Error(`rollout: numGenerations must be a positive integer, got ${G}`);
  const expanded = prompts.flatMap((p) => Array.from({ length: G }, () => p));
  const raw = await generate(model, expanded, opts);
  const pad = opts.padTokenId ?? model.config.bosTokenId;
  return {
    promptIndex: expanded.map((_, i) => Math.floor(i / G)),
    ...completionMasks(raw, opts.stopTokenIds ?? [], pad, opts.maskTruncatedCompletions),
  };
}
