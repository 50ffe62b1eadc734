// Rollout engines: one interface for sampling GRPO completions, whether from the live tfjs policy,
// from llama.cpp in this process (node-llama-cpp) or from an OpenAI-compatible server (vLLM,
// SGLang, llama.cpp's server); plus what every engine shares: request checks, per-completion
// seeds and the cut through the first stop token. docs/rollout-engines.md describes them.
import seedrandom from 'seedrandom';
import type { Qwen3ForCausalLM } from '../model/qwen3.js';
import type { LlamaCppEngineOptions } from './llama_cpp.js';
import type { OpenAIEngineOptions } from './openai.js';

export interface RolloutRequest {
  /** Prompt token ids (chat template applied). */
  prompts: number[][];
  /** Completions per prompt, G; the result lists G consecutive completions per prompt. */
  numGenerations: number;
  maxNewTokens: number;
  /** 0 = greedy; otherwise sampled at this temperature. */
  temperature: number;
  /** 1 / undefined: off. */
  topP?: number;
  /** 0 / undefined: off. */
  topK?: number;
  /** 0 / undefined: off. */
  minP?: number;
  /** 1 / undefined: off (transformers' semantics: prompt and completion ids, logit / p when
   * positive, logit * p otherwise). */
  repetitionPenalty?: number;
  stopTokenIds: number[];
  /** Same seed, same request -> same completions where the engine allows. */
  seed: number | string;
  /** Also return the sampler's log-prob of every completion token: at the sampling temperature,
   * renormalised over the tokens the filters keep (docs/rollout-engines.md says per engine). */
  logprobs?: boolean;
}

export interface EngineCompletions {
  /** One per completion: generated ids, through the first stop token (included) or maxNewTokens, unpadded. */
  completions: number[][];
  /** Same shape as completions, when asked and the engine has them. */
  logprobs?: number[][];
}

export type RolloutEngineKind = 'tfjs' | 'llama.cpp' | 'openai';

export interface RolloutEngine {
  readonly name: RolloutEngineKind;
  generate(req: RolloutRequest): Promise<EngineCompletions>;
  /** Bring the engine's weights to the policy's after an optimizer step (no-op for tfjs, which
   * samples from the live policy). `step` names files/adapters. */
  sync(policy: Qwen3ForCausalLM, step: number): Promise<void>;
  close(): Promise<void>;
}

export interface EngineErrorDetails {
  /** The URL of the failed HTTP request. */
  url?: string;
  /** Its HTTP status, when the server answered. */
  status?: number;
  cause?: unknown;
}

/** A rollout engine's failure: the message names the engine, and for HTTP the URL and status. */
export class EngineError extends Error {
  override readonly name = 'EngineError';
  readonly url?: string;
  readonly status?: number;
  constructor(
    readonly engine: RolloutEngineKind,
    message: string,
    details: EngineErrorDetails = {},
  ) {
    super(`${engine} rollout engine: ${message}`, details.cause === undefined ? undefined : { cause: details.cause });
    this.url = details.url;
    this.status = details.status;
  }
}

/** The message of anything thrown. */
export const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Checks a request (throws an EngineError naming the field) and returns its sampling settings
 * with the defaults filled in. `vocabSize`, when given, bounds the prompt ids.
 */
export function checkRequest(req: RolloutRequest, engine: RolloutEngineKind, vocabSize?: number): Required<Omit<RolloutRequest, 'prompts' | 'seed'>> {
  const bad = (what: string): never => {
    throw new EngineError(engine, `bad request: ${what}`);
  };
  if (!req || typeof req !== 'object') bad('not an object');
  if (!Array.isArray(req.prompts)) bad('prompts must be an array of token-id arrays');
  req.prompts.forEach((p, i) => {
    if (!Array.isArray(p) || p.length === 0) bad(`prompt ${i} is empty or not an array`);
    for (const id of p) {
      if (!Number.isInteger(id) || id < 0 || (vocabSize !== undefined && id >= vocabSize)) bad(`prompt ${i} holds id ${String(id)}, outside [0, ${vocabSize ?? 'vocab'})`);
    }
  });
  const { numGenerations: G, maxNewTokens, temperature } = req;
  const topP = req.topP ?? 1, topK = req.topK ?? 0, minP = req.minP ?? 0, repetitionPenalty = req.repetitionPenalty ?? 1;
  if (!(Number.isInteger(G) && G > 0)) bad(`numGenerations must be a positive integer, got ${String(G)}`);
  if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 0)) bad(`maxNewTokens must be a whole number >= 0, got ${String(maxNewTokens)}`);
  if (!(Number.isFinite(temperature) && temperature >= 0)) bad(`temperature must be a finite number >= 0 (0: greedy), got ${String(temperature)}`);
  if (!(topP > 0 && topP <= 1)) bad(`topP must be in (0, 1] (1: off), got ${String(topP)}`);
  if (!(Number.isInteger(topK) && topK >= 0)) bad(`topK must be a whole number >= 0 (0: off), got ${String(topK)}`);
  if (!(minP >= 0 && minP <= 1)) bad(`minP must be in [0, 1] (0: off), got ${String(minP)}`);
  if (!(Number.isFinite(repetitionPenalty) && repetitionPenalty > 0)) bad(`repetitionPenalty must be a finite number > 0 (1: off), got ${String(repetitionPenalty)}`);
  if (!Array.isArray(req.stopTokenIds) || !req.stopTokenIds.every((id) => Number.isInteger(id) && id >= 0)) bad('stopTokenIds must be an array of token ids');
  if (!(typeof req.seed === 'string' || Number.isFinite(req.seed))) bad(`seed must be a number or a string, got ${String(req.seed)}`);
  return { numGenerations: G, maxNewTokens, temperature, topP, topK, minP, repetitionPenalty, stopTokenIds: req.stopTokenIds, logprobs: req.logprobs === true };
}

/** A seed in [0, 2^31) for completion (or request chunk) `index` of a request seeded `seed`:
 * the same for the same pair, different across indices; fits every engine's seed field. */
export function derivedSeed(seed: number | string, index: number): number {
  return Math.floor(seedrandom(`${String(seed)}:${index}`)() * 2 ** 31);
}

/** The prompt index of each completion: G consecutive completions per prompt. */
export function promptIndices(prompts: number, G: number): number[] {
  return Array.from({ length: prompts * G }, (_, i) => Math.floor(i / G));
}

/** The ids through the first stop token (included), and at most `max` of them. */
export function cutAtStop(ids: number[], stops: ReadonlySet<number>, max = Infinity): number[] {
  const end = ids.findIndex((id) => stops.has(id));
  return ids.slice(0, Math.min(end < 0 ? ids.length : end + 1, max));
}

/** Runs one task at a time, in call order (an engine's generate, sync and close never overlap). */
export function serialQueue(): <T>(task: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(task: () => Promise<T>): Promise<T> => {
    const run = tail.then(task, task);
    tail = run.catch(() => undefined);
    return run;
  };
}

export type RolloutEngineOptions = {
  tfjs: { policy: Qwen3ForCausalLM };
  'llama.cpp': LlamaCppEngineOptions;
  openai: OpenAIEngineOptions;
};

/** The engine of `kind`, built from its constructor's options (createTfjsEngine,
 * createLlamaCppEngine, createOpenAIEngine). */
export async function createRolloutEngine<K extends RolloutEngineKind>(kind: K, opts: RolloutEngineOptions[K]): Promise<RolloutEngine> {
  // Loaded on demand: the engines import this module.
  switch (kind) {
    case 'tfjs':
      return (await import('./tfjs.js')).createTfjsEngine((opts as RolloutEngineOptions['tfjs']).policy);
    case 'llama.cpp':
      return (await import('./llama_cpp.js')).createLlamaCppEngine(opts as LlamaCppEngineOptions);
    case 'openai':
      return (await import('./openai.js')).createOpenAIEngine(opts as OpenAIEngineOptions);
    default:
      throw new Error(`createRolloutEngine: unknown engine ${JSON.stringify(kind)}; expected 'tfjs', 'llama.cpp' or 'openai'`);
  }
}
