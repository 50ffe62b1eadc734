// The OpenAI-compatible rollout engine: completions from a server (vLLM, SGLang, llama.cpp's
// server) through POST /v1/completions with token-id prompts, vLLM's request and reply shapes
// (token ids back through return_token_ids, or "token_id:N" logprob tokens). Requests are split
// into chunks sent with bounded concurrency, each with a timeout and retries with backoff on
// network errors, 408, 429 and 5xx. LoRA policies sync as PEFT adapters loaded through vLLM's
// /v1/load_lora_adapter; full fine-tuning through the caller's hook. docs/rollout-engines.md.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { saveLora } from '../model/lora.js';
import type { Qwen3ForCausalLM } from '../model/qwen3.js';
import {
  checkRequest, cutAtStop, derivedSeed, EngineError, errorMessage, serialQueue,
  type EngineCompletions, type RolloutEngine, type RolloutRequest,
} from './engine.js';

export interface OpenAIEngineOptions {
  /** The server's base URL, e.g. http://127.0.0.1:8000 (a trailing /v1 is accepted). */
  url: string;
  /** The served model's name (vLLM's --served-model-name, else its model path). */
  model: string;
  /** Most requests in flight at once (default 4). */
  concurrency?: number;
  /** Prompts per HTTP request (default: the request's prompts spread over `concurrency`
   * requests, at most 64 each). */
  promptsPerRequest?: number;
  /** Per-request timeout, body included (default 120000 ms). */
  timeoutMs?: number;
  /** Retries of a request after a network error, a timeout or HTTP 408 / 429 / 5xx (default 3),
   * with exponential backoff and jitter (Retry-After is honoured up to 30 s). */
  retries?: number;
  /** First backoff in ms (default 500; doubled per retry, capped at 8 s, times a jitter in [0.5, 1]). */
  retryDelayMs?: number;
  /** Sent as `Authorization: Bearer <apiKey>` (vLLM's --api-key). */
  apiKey?: string;
  /** LoRA sync: each sync writes the policy's adapters (PEFT format) to `${dir}/step-${step}` and
   * loads them on the server as `${name}-step-${step}` (name default 'policy'); `serverDir` is the
   * same folder as the server sees it (default: dir). */
  lora?: { dir: string; name?: string; serverDir?: string };
  /** Full fine-tuning: pushes the policy's weights to the server (yours to write). */
  syncWeights?: (policy: Qwen3ForCausalLM, step: number) => Promise<void>;
  /** The fetch to use (default: globalThis.fetch). */
  fetch?: typeof fetch;
}

/** vLLM's completion choice, as far as this engine reads it. */
interface Choice {
  index?: unknown;
  token_ids?: unknown;
  logprobs?: { token_logprobs?: unknown; tokens?: unknown } | null;
}

/** The start of a reply body for an error message: one line, at most 300 characters. */
function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 300 ? `${flat.slice(0, 300)}…` : flat || '(empty body)';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Thrown inside a chunk that stopped because another one failed (never surfaces). */
class Cancelled extends Error {}

/** Validates options; an EngineError names the bad one. */
function settings(opts: OpenAIEngineOptions) {
  const fail = (msg: string): never => {
    throw new EngineError('openai', msg);
  };
  if (!opts || typeof opts.url !== 'string' || !/^https?:\/\/[^/]/.test(opts.url)) fail(`url must be an http(s) URL, got ${JSON.stringify(opts?.url)}`);
  if (typeof opts.model !== 'string' || opts.model === '') fail('model (the served model name) is required');
  const whole = (name: string, v: number | undefined, def: number, min: number): number => {
    const x = v ?? def;
    if (!(Number.isInteger(x) && x >= min)) fail(`${name} must be a whole number >= ${min}, got ${String(v)}`);
    return x;
  };
  const fetchFn = opts.fetch ?? globalThis.fetch;
  if (typeof fetchFn !== 'function') fail('no fetch: Node 18+ has one, or pass opts.fetch');
  if (opts.lora && (typeof opts.lora.dir !== 'string' || opts.lora.dir === '')) fail('lora.dir must be a folder path');
  return {
    base: opts.url.replace(/\/+$/, '').replace(/\/v1$/, ''),
    concurrency: whole('concurrency', opts.concurrency, 4, 1),
    perRequest: opts.promptsPerRequest === undefined ? undefined : whole('promptsPerRequest', opts.promptsPerRequest, 1, 1),
    timeoutMs: whole('timeoutMs', opts.timeoutMs, 120_000, 1),
    retries: whole('retries', opts.retries, 3, 0),
    retryDelayMs: whole('retryDelayMs', opts.retryDelayMs, 500, 0),
    fetchFn,
  };
}

/**
 * An engine that samples from an OpenAI-compatible server. Nothing is sent until the first
 * generate or sync; the server must already serve `opts.model` (and, for LoRA sync, allow runtime
 * adapter loading: vLLM's --enable-lora with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True).
 */
export function createOpenAIEngine(opts: OpenAIEngineOptions): RolloutEngine {
  const s = settings(opts);
  const queue = serialQueue();
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}) };
  let model = opts.model;
  let adapter: { name: string; dir: string } | undefined;
  let closed = false;

  /**
   * POSTs JSON and returns the reply's text: retries network errors, timeouts and 408 / 429 /
   * 5xx; any other non-2xx is an EngineError at once (404 gives null when `missingOk`).
   */
  const post = async (route: string, body: unknown, o: { signal?: AbortSignal; missingOk?: boolean; retries?: number } = {}): Promise<string | null> => {
    const url = `${s.base}${route}`;
    const retries = o.retries ?? s.retries;
    const payload = JSON.stringify(body);
    let last = '';
    let status: number | undefined;
    for (let attempt = 0; ; attempt++) {
      if (o.signal?.aborted) throw new Cancelled();
      const ac = new AbortController();
      const onAbort = () => ac.abort();
      o.signal?.addEventListener('abort', onAbort);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        ac.abort();
      }, s.timeoutMs);
      let retryAfter = 0;
      try {
        const res = await s.fetchFn(url, { method: 'POST', headers, body: payload, signal: ac.signal });
        const text = await res.text();
        if (res.ok) return text;
        if (res.status === 404 && o.missingOk) return null;
        status = res.status;
        last = `answered HTTP ${res.status}: ${snippet(text)}`;
        if (!(res.status === 408 || res.status === 429 || res.status >= 500)) throw new EngineError('openai', `POST ${url} ${last}`, { url, status });
        retryAfter = Number(res.headers.get('retry-after')) * 1000 || 0;
      } catch (err) {
        if (err instanceof EngineError) throw err;
        if (o.signal?.aborted) throw new Cancelled();
        status = undefined;
        last = timedOut ? `timed out after ${s.timeoutMs} ms` : `failed: ${errorMessage(err)}${(err as { cause?: unknown }).cause ? ` (${errorMessage((err as { cause: unknown }).cause)})` : ''}`;
      } finally {
        clearTimeout(timer);
        o.signal?.removeEventListener('abort', onAbort);
      }
      if (attempt >= retries) {
        throw new EngineError('openai', `POST ${url} ${last}${attempt > 0 ? ` (${attempt + 1} attempts)` : ''}`, { url, status });
      }
      const backoff = Math.min(8000, s.retryDelayMs * 2 ** attempt) * (0.5 + Math.random() / 2);
      await sleep(Math.min(30_000, Math.max(backoff, retryAfter)));
    }
  };

  const parse = (text: string, url: string): Record<string, unknown> => {
    try {
      const json = JSON.parse(text) as unknown;
      if (json && typeof json === 'object' && !Array.isArray(json)) return json as Record<string, unknown>;
    } catch {
      // reported below
    }
    throw new EngineError('openai', `POST ${url}: the reply is not a JSON object: ${snippet(text)}`, { url });
  };

  /** One chunk of prompts: its G completions each, ordered by choices[].index. */
  const complete = async (prompts: number[][], first: number, req: RolloutRequest, r: ReturnType<typeof checkRequest>, signal: AbortSignal) => {
    const G = r.numGenerations;
    const body = {
      model,
      prompt: prompts,
      n: G,
      max_tokens: r.maxNewTokens,
      temperature: r.temperature,
      // Sent always: vLLM otherwise takes the model's generation_config defaults (Qwen3: top-k 20, top-p 0.95).
      top_p: r.topP,
      top_k: r.topK > 0 ? r.topK : -1, // -1: off for vLLM, SGLang and llama.cpp's server alike
      min_p: r.minP,
      repetition_penalty: r.repetitionPenalty,
      seed: derivedSeed(req.seed, first),
      stop_token_ids: r.stopTokenIds,
      skip_special_tokens: false,
      include_stop_str_in_output: true,
      return_token_ids: true,
      return_tokens_as_token_ids: true,
      stream: false,
      ...(r.logprobs ? { logprobs: 1 } : {}),
    };
    const url = `${s.base}/v1/completions`;
    const json = parse((await post('/v1/completions', body, { signal }))!, url);
    const bad = (what: string): never => {
      throw new EngineError('openai', `POST ${url}: malformed reply: ${what}`, { url });
    };
    const choices = json.choices;
    if (!Array.isArray(choices)) return bad('no "choices" array');
    const want = prompts.length * G;
    if (choices.length !== want) bad(`${choices.length} choices for ${prompts.length} prompts x n ${G} (${want} expected)`);
    const ids: number[][] = new Array(want);
    const lps: number[][] = new Array(want);
    for (const c of choices as Choice[]) {
      const k = c?.index;
      if (!(typeof k === 'number' && Number.isInteger(k) && k >= 0 && k < want)) bad(`choice index ${JSON.stringify(k)} is not an integer in [0, ${want})`);
      const i = k as number;
      if (ids[i]) bad(`choice index ${i} appears twice`);
      // Token ids: vLLM's token_ids (return_token_ids), else the logprob tokens "token_id:N"
      // (return_tokens_as_token_ids, older servers); when both come they must agree.
      const tokens = c.logprobs?.tokens;
      const fromTokens = Array.isArray(tokens) && tokens.every((t) => typeof t === 'string' && /^token_id:\d+$/.test(t)) ? tokens.map((t) => Number((t as string).slice(9))) : undefined;
      const got = c.token_ids ?? fromTokens;
      if (got === undefined || got === null) return bad(`choice ${i} has no token_ids (vLLM's return_token_ids) and no "token_id:N" logprob tokens to read ids from`);
      if (!Array.isArray(got)) return bad(`choice ${i}: token_ids is not an array`);
      for (const id of got) if (!(typeof id === 'number' && Number.isInteger(id) && id >= 0)) bad(`choice ${i} holds token id ${JSON.stringify(id)}, not a non-negative integer`);
      if (fromTokens && got !== fromTokens && (fromTokens.length !== got.length || fromTokens.some((id, j) => id !== got[j]))) bad(`choice ${i}: token_ids and the logprob tokens disagree`);
      if (got.length > r.maxNewTokens) bad(`choice ${i} has ${got.length} tokens, more than max_tokens ${r.maxNewTokens}`);
      ids[i] = got as number[];
      if (r.logprobs) {
        const lp = c.logprobs?.token_logprobs;
        if (!Array.isArray(lp)) bad(`choice ${i} has no logprobs.token_logprobs`);
        if ((lp as unknown[]).length !== ids[i].length) bad(`choice ${i} has ${(lp as unknown[]).length} logprobs for ${ids[i].length} tokens`);
        (lp as unknown[]).forEach((v, j) => {
          if (!(typeof v === 'number' && Number.isFinite(v) && v <= 1e-6)) bad(`choice ${i} logprob ${j} is ${JSON.stringify(v)}, not a finite log-probability`);
        });
        lps[i] = lp as number[];
      }
    }
    return { ids, lps };
  };

  const generate = async (req: RolloutRequest): Promise<EngineCompletions> => {
    if (closed) throw new EngineError('openai', 'generate after close()');
    const r = checkRequest(req, 'openai');
    const G = r.numGenerations;
    const n = req.prompts.length * G;
    if (n === 0 || r.maxNewTokens === 0) return { completions: Array.from({ length: n }, () => []), ...(r.logprobs ? { logprobs: Array.from({ length: n }, () => []) } : {}) };
    const per = s.perRequest ?? Math.min(64, Math.ceil(req.prompts.length / s.concurrency));
    const starts = Array.from({ length: Math.ceil(req.prompts.length / per) }, (_, k) => k * per);
    const group = new AbortController();
    const results: Awaited<ReturnType<typeof complete>>[] = new Array(starts.length);
    let failure: unknown;
    let next = 0;
    const worker = async () => {
      while (next < starts.length && !group.signal.aborted) {
        const k = next++;
        try {
          results[k] = await complete(req.prompts.slice(starts[k], starts[k] + per), starts[k], req, r, group.signal);
        } catch (err) {
          if (!(err instanceof Cancelled) && failure === undefined) failure = err;
          group.abort();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(s.concurrency, starts.length) }, worker));
    if (failure !== undefined) throw failure;
    const stops = new Set(r.stopTokenIds);
    const completions: number[][] = [];
    const logprobs: number[][] = [];
    for (const { ids, lps } of results) {
      ids.forEach((c, i) => {
        const cut = cutAtStop(c, stops, r.maxNewTokens);
        completions.push(cut);
        if (r.logprobs) logprobs.push(lps[i].slice(0, cut.length));
      });
    }
    return { completions, ...(r.logprobs ? { logprobs } : {}) };
  };

  const sync = async (policy: Qwen3ForCausalLM, step: number): Promise<void> => {
    if (closed) throw new EngineError('openai', 'sync after close()');
    if (opts.lora && policy.adapters.size > 0) {
      const dir = path.resolve(opts.lora.dir, `step-${step}`);
      try {
        await saveLora(policy, dir, { baseModelNameOrPath: opts.model });
      } catch (err) {
        throw new EngineError('openai', `cannot write the LoRA adapter to ${dir}: ${errorMessage(err)}`, { cause: err });
      }
      const name = `${opts.lora.name ?? 'policy'}-step-${step}`;
      const serverPath = opts.lora.serverDir ? path.posix.join(opts.lora.serverDir, `step-${step}`) : dir;
      if (adapter) {
        await post('/v1/unload_lora_adapter', { lora_name: adapter.name }, { missingOk: true });
        model = opts.model;
      }
      await post('/v1/load_lora_adapter', { lora_name: name, lora_path: serverPath });
      if (adapter && adapter.dir !== dir) fs.rmSync(adapter.dir, { recursive: true, force: true });
      adapter = { name, dir };
      model = name;
      return;
    }
    if (opts.syncWeights) {
      try {
        await opts.syncWeights(policy, step);
      } catch (err) {
        throw new EngineError('openai', `syncWeights failed at step ${step}: ${errorMessage(err)}`, { cause: err });
      }
      return;
    }
    throw new EngineError(
      'openai',
      policy.adapters.size > 0
        ? `the policy changed (step ${step}) but the server cannot follow: give opts.lora (a folder the server reads adapters from) or opts.syncWeights`
        : `the policy changed (step ${step}) but the server cannot follow: full fine-tuning needs opts.syncWeights (LoRA sync needs adapters on the policy)`,
    );
  };

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    // Best effort: the server may be gone already.
    if (adapter) await post('/v1/unload_lora_adapter', { lora_name: adapter.name }, { missingOk: true, retries: 0 }).catch(() => undefined);
  };

  return {
    name: 'openai',
    generate: (req) => queue(() => generate(req)),
    sync: (policy, step) => queue(() => sync(policy, step)),
    close: () => queue(close),
  };
}
