// The llama.cpp rollout engine: the policy written as GGUF (F32 by default) and sampled by
// llama.cpp in this process through node-llama-cpp (an optional peer dependency, loaded only
// through loadLlamaCpp: prebuilt binaries, never a build). All completions of a request run as
// parallel sequences of one context, each with its own seed; log-probs are node-llama-cpp's
// confidence of the sampled token. Weight sync writes a new LoRA adapter file (LoRA policies) or a
// new model file (full fine-tuning) per sync. docs/rollout-engines.md has the details.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel, SequenceEvaluateOptions } from 'node-llama-cpp';
import { loadLlamaCpp, saveGguf, saveLoraGguf, type GgufDtype, type GgufTokenizer } from '../model/gguf.js';
import type { Qwen3ForCausalLM } from '../model/qwen3.js';
import {
  checkRequest, cutAtStop, derivedSeed, EngineError, errorMessage, promptIndices, serialQueue,
  type EngineCompletions, type RolloutEngine, type RolloutRequest,
} from './engine.js';

export interface LlamaCppEngineOptions {
  /** The policy; written to `dir` at creation. */
  policy: Qwen3ForCausalLM;
  /** Its tokenizer (a ChatTokenizer), for saveGguf: llama.cpp needs the vocabulary in the file. */
  tokenizer: GgufTokenizer;
  /** Where the GGUF files go (created when missing); superseded files are deleted. */
  dir: string;
  /** Which prebuilt llama.cpp binary (default false: the CPU one). */
  gpu?: 'auto' | 'cuda' | 'vulkan' | false;
  /** GGUF dtype of the weights (default F32: log-probs within about 1e-4 of the trainer's). With
   * Q8_0 the base weights are quantized and LoRA adapters stay F32. */
  dtype?: GgufDtype;
  /** KV cache type (default F32; node-llama-cpp's own default is F16). */
  kvCache?: 'F32' | 'F16';
  /** Least context size per sequence (default: longest prompt + maxNewTokens, grown as needed). */
  contextSize?: number;
  /** CPU threads llama.cpp may use (default: the machine's cores. node-llama-cpp's own default is
   * at least 4, and llama.cpp's threads spin while they wait for each other: measured on 2 cores,
   * 4 threads made a GRPO rollout 40 times slower). */
  threads?: number;
  /** After this many adapter syncs the base model is reloaded, freeing llama.cpp's adapter cache
   * (adapters stay in memory for the model's lifetime); default 16, 0 = never. */
  reloadEvery?: number;
}

const DTYPES: readonly GgufDtype[] = ['F32', 'F16', 'BF16', 'Q8_0'];

/**
 * Works around a race in node-llama-cpp 3.21.1: after a decode whose outputs llama.cpp must
 * reorder (prompts of several sequences in one batch), the first read of the logits reorders them
 * in place, and the sequences' samplers read them on parallel worker threads, so a sequence could
 * sample from another one's logits (measured: wrong first tokens in about a fifth of 2- to
 * 6-sequence runs). Here the first sampling after each decode runs alone and the rest after it.
 */
function guardLogitReads(context: LlamaContext): void {
  type Addon = { decodeBatch(...a: unknown[]): Promise<unknown>; sampleToken(...a: unknown[]): Promise<unknown> };
  const addon = (context as unknown as { _ctx?: Addon })._ctx;
  if (typeof addon?.decodeBatch !== 'function' || typeof addon.sampleToken !== 'function') {
    throw new EngineError('llama.cpp', 'node-llama-cpp\'s context internals are not the ones this engine was written for (3.21.1)');
  }
  const decode = addon.decodeBatch.bind(addon);
  const sample = addon.sampleToken.bind(addon);
  let fresh = false;
  let first: Promise<unknown> | undefined;
  Object.defineProperty(addon, 'decodeBatch', {
    value: async (...a: unknown[]) => {
      const r = await decode(...a);
      [fresh, first] = [true, undefined];
      return r;
    },
  });
  Object.defineProperty(addon, 'sampleToken', {
    value: (...a: unknown[]) => {
      if (fresh) {
        fresh = false;
        return (first = sample(...a));
      }
      const after = () => sample(...a);
      return first ? first.then(after, after) : sample(...a);
    },
  });
}

/**
 * Writes the policy (F32 GGUF by default; a LoRA policy as its base model plus an adapter file)
 * into opts.dir, starts llama.cpp and loads it. Fails with an EngineError when node-llama-cpp is
 * missing or no prebuilt binary fits: there is no silent fallback to another engine.
 */
export async function createLlamaCppEngine(opts: LlamaCppEngineOptions): Promise<RolloutEngine & { threads: number }> {
  const fail = (msg: string, cause?: unknown): never => {
    throw new EngineError('llama.cpp', msg, { cause });
  };
  const dtype = opts.dtype ?? 'F32';
  const kvCache = opts.kvCache ?? 'F32';
  const reloadEvery = opts.reloadEvery ?? 16;
  if (!DTYPES.includes(dtype)) fail(`dtype ${JSON.stringify(dtype)} is not one of ${DTYPES.join(', ')}`);
  if (kvCache !== 'F32' && kvCache !== 'F16') fail(`kvCache ${JSON.stringify(kvCache)} is not F32 or F16`);
  if (!(Number.isInteger(reloadEvery) && reloadEvery >= 0)) fail(`reloadEvery must be a whole number >= 0, got ${String(reloadEvery)}`);
  if (opts.contextSize !== undefined && !(Number.isInteger(opts.contextSize) && opts.contextSize > 0)) fail(`contextSize must be a positive integer, got ${String(opts.contextSize)}`);
  if (opts.threads !== undefined && !(Number.isInteger(opts.threads) && opts.threads > 0)) fail(`threads must be a positive integer, got ${String(opts.threads)}`);
  const threads = opts.threads ?? os.availableParallelism();
  if (!opts.tokenizer) fail('opts.tokenizer is required: the GGUF file carries the vocabulary');
  const dir = path.resolve(opts.dir);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    fail(`cannot create ${dir}: ${errorMessage(err)}`, err);
  }

  let llama: Llama;
  try {
    llama = await loadLlamaCpp({ gpu: opts.gpu ?? false, maxThreads: threads });
  } catch (err) {
    return fail(`cannot start llama.cpp: ${errorMessage(err)}`, err);
  }

  const used = new Set<string>();
  /** A file name this engine has not used yet: llama.cpp caches adapters by path for a model's
   * lifetime, so a rewritten file would not be read again. */
  const fresh = (stem: string): string => {
    let file = path.join(dir, `${stem}.gguf`);
    for (let k = 2; used.has(file); k++) file = path.join(dir, `${stem}-${k}.gguf`);
    used.add(file);
    return file;
  };
  const remove = (file: string | undefined) => {
    if (file) fs.rmSync(file, { force: true });
  };

  let modelFile = '';
  let adapterFile: string | undefined;
  let model: LlamaModel | undefined;
  let context: LlamaContext | undefined;
  let sequences: LlamaContextSequence[] = [];
  let contextSize = 0;
  let adapterSyncs = 0;
  let closed = false;

  const writeModel = async (policy: Qwen3ForCausalLM, stem: string): Promise<void> => {
    const file = fresh(stem);
    try {
      await saveGguf(policy, file, { dtype, tokenizer: opts.tokenizer, ...(policy.adapters.size > 0 ? { lora: 'base' as const } : {}) });
    } catch (err) {
      fail(`cannot write the policy to ${file}: ${errorMessage(err)}`, err);
    }
    modelFile = file;
  };
  const writeAdapter = async (policy: Qwen3ForCausalLM, stem: string): Promise<void> => {
    const file = fresh(stem);
    try {
      await saveLoraGguf(policy, file, { dtype: dtype === 'Q8_0' ? 'F32' : dtype });
    } catch (err) {
      fail(`cannot write the LoRA adapters to ${file}: ${errorMessage(err)}`, err);
    }
    adapterFile = file;
  };
  const dropContext = async () => {
    const c = context;
    [context, sequences, contextSize] = [undefined, [], 0];
    await c?.dispose();
  };
  const loadModel = async () => {
    await dropContext();
    await model?.dispose();
    model = undefined;
    try {
      model = await llama.loadModel({ modelPath: modelFile });
    } catch (err) {
      fail(`llama.cpp cannot load ${modelFile}: ${errorMessage(err)}`, err);
    }
  };
  /** A context with at least n sequences of `size` tokens each, with the current adapter. */
  const ensureContext = async (n: number, size: number): Promise<LlamaContextSequence[]> => {
    if (context && sequences.length >= n && contextSize >= size) return sequences;
    const want = { n: Math.max(n, sequences.length), size: Math.max(size, contextSize, opts.contextSize ?? 0) };
    await dropContext();
    try {
      context = await model!.createContext({
        sequences: want.n,
        contextSize: want.size,
        flashAttention: false,
        experimentalKvCacheKeyType: kvCache,
        experimentalKvCacheValueType: kvCache,
        threads,
        ...(adapterFile ? { lora: { adapters: [{ filePath: adapterFile }] } } : {}),
      });
    } catch (err) {
      fail(`cannot create a context of ${want.n} sequences x ${want.size} tokens: ${errorMessage(err)}`, err);
    }
    guardLogitReads(context!);
    contextSize = context!.contextSize;
    sequences = Array.from({ length: want.n }, () => context!.getSequence());
    return sequences;
  };

  try {
    await writeModel(opts.policy, 'policy');
    if (opts.policy.adapters.size > 0) await writeAdapter(opts.policy, 'adapter');
    await loadModel();
  } catch (err) {
    await llama.dispose().catch(() => undefined);
    throw err;
  }

  const queue = serialQueue();
  const vocabSize = opts.policy.config.vocabSize;

  const generate = async (req: RolloutRequest): Promise<EngineCompletions> => {
    if (closed) fail('generate after close()');
    const s = checkRequest(req, 'llama.cpp', vocabSize);
    const rows = promptIndices(req.prompts.length, s.numGenerations);
    const want = s.logprobs;
    if (rows.length === 0 || s.maxNewTokens === 0) return { completions: rows.map(() => []), ...(want ? { logprobs: rows.map(() => []) } : {}) };
    const longest = Math.max(...req.prompts.map((p) => p.length));
    // A sequence evaluates its prompt and all but its last new token; one cell spare.
    const seqs = await ensureContext(rows.length, longest + s.maxNewTokens + 1);
    const stops = new Set(s.stopTokenIds);
    // TRL's sampling: node-llama-cpp's defaults (top-k 40, top-p 0.95) are replaced; a filter that
    // is off is left out of the sampler chain (null drops it; top-k 0 would sort the vocabulary).
    const off = null as unknown as undefined;
    const base: SequenceEvaluateOptions = {
      temperature: s.temperature,
      topK: s.topK > 0 ? s.topK : off,
      topP: s.topP < 1 ? s.topP : off,
      minP: s.minP > 0 ? s.minP : off,
      yieldEogToken: true,
    };
    const one = async (i: number): Promise<[number[], number[]]> => {
      const seq = seqs[i];
      const prompt = req.prompts[rows[i]];
      const ids: number[] = [];
      const lps: number[] = [];
      await seq.clearHistory();
      const options: SequenceEvaluateOptions = {
        ...base,
        seed: derivedSeed(req.seed, i),
        ...(s.repetitionPenalty !== 1
          ? { repeatPenalty: { punishTokens: () => [...prompt, ...ids] as never[], penalty: s.repetitionPenalty, maxPunishTokens: prompt.length + s.maxNewTokens, frequencyPenalty: 0, presencePenalty: 0 } }
          : {}),
      };
      for await (const out of seq.evaluateWithMetadata(prompt as never[], { confidence: want }, options)) {
        ids.push(out.token as number);
        if (want) lps.push(Math.log((out as { confidence?: number }).confidence ?? NaN));
        if (stops.has(out.token as number) || ids.length >= s.maxNewTokens) break;
      }
      return [ids, lps];
    };
    let results: [number[], number[]][];
    try {
      results = await Promise.all(rows.map((_, i) => one(i)));
    } catch (err) {
      // A failed evaluation may leave sequences mid-way: the next request starts a fresh context.
      await dropContext().catch(() => undefined);
      return fail(`generation failed: ${errorMessage(err)}`, err);
    }
    const completions = results.map(([ids]) => cutAtStop(ids, stops, s.maxNewTokens));
    return { completions, ...(want ? { logprobs: results.map(([, lps], i) => lps.slice(0, completions[i].length)) } : {}) };
  };

  const sync = async (policy: Qwen3ForCausalLM, step: number): Promise<void> => {
    if (closed) fail('sync after close()');
    if (policy.config.vocabSize !== vocabSize || policy.config.numHiddenLayers !== opts.policy.config.numHiddenLayers) fail('sync: the policy has another shape than the model the engine was created with');
    if (policy.adapters.size > 0) {
      // The base weights are frozen while adapters train: the base file stays, the adapter is new.
      const old = adapterFile;
      await writeAdapter(policy, `adapter-step-${step}`);
      adapterSyncs++;
      if (reloadEvery > 0 && adapterSyncs % reloadEvery === 0) await loadModel();
      else await dropContext();
      remove(old);
    } else {
      const [oldModel, oldAdapter] = [modelFile, adapterFile];
      await writeModel(policy, `policy-step-${step}`);
      adapterFile = undefined;
      adapterSyncs = 0;
      await loadModel();
      remove(oldModel);
      remove(oldAdapter);
    }
  };

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await dropContext();
    await model?.dispose();
    model = undefined;
    await llama.dispose();
  };

  return {
    name: 'llama.cpp',
    /** The threads llama.cpp evaluates with (its context's own count once one exists). */
    get threads() {
      return context?.idealThreads ?? threads;
    },
    generate: (req) => queue(() => generate(req)),
    sync: (policy, step) => queue(() => sync(policy, step)),
    close: () => queue(close),
  };
}
