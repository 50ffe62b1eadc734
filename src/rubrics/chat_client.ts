// A client for OpenAI-compatible chat endpoints (OpenAI, vLLM, SGLang, llama.cpp's server,
// Ollama): POST {url}/v1/chat/completions, one reply per request, each attempt with a timeout,
// retried with exponential backoff and jitter on network errors, timeouts and HTTP 408 / 429 /
// 5xx (Retry-After honoured). Errors name the URL, the status and the start of the body.
// `askJson` adds the schema-constrained round trip the rubric stages use: a JSON reply checked by
// the caller, re-asked once with the problems quoted.
import type { ChatMessage } from '../data/chat.js';

export interface ChatClientOptions {
  /** The server's base URL, e.g. http://127.0.0.1:8000 (a trailing /v1 is accepted). */
  url: string;
  /** The served model's name. */
  model: string;
  /** Per-attempt timeout, body included (default 120000 ms). */
  timeoutMs?: number;
  /** Retries after a network error, a timeout or HTTP 408 / 429 / 5xx (default 3). */
  retries?: number;
  /** First backoff in ms (default 1000; doubled per retry, capped at 30 s, times a jitter in [0.5, 1]). */
  retryDelayMs?: number;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** The fetch to use (default: globalThis.fetch). */
  fetch?: typeof fetch;
}

/** A JSON schema the reply must follow (OpenAI's structured outputs; vLLM's guided decoding). */
export interface ReplySchema {
  name: string;
  schema: Record<string, unknown>;
}

export interface ChatRequest {
  messages: ChatMessage[];
  temperature?: number;
  maxTokens?: number;
  seed?: number;
  schema?: ReplySchema;
}

export interface ChatReply {
  content: string;
  /** HTTP attempts this reply took (1 when the first one answered). */
  attempts: number;
}

/** A call that failed for good, after `attempts` HTTP attempts. */
export class ChatError extends Error {
  override readonly name = 'ChatError';
  constructor(
    message: string,
    readonly url: string,
    readonly attempts: number,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** The caller's signal fired: nothing more is sent (never reported as a failure). */
export class Aborted extends Error {
  override readonly name = 'Aborted';
}

export interface ChatClient {
  readonly url: string;
  readonly model: string;
  chat(req: ChatRequest, signal?: AbortSignal): Promise<ChatReply>;
}

const MAX_BACKOFF_MS = 30_000;

/** The start of a body for an error message: one line, at most 300 characters. */
function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 300 ? `${flat.slice(0, 300)}…` : flat || '(empty body)';
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date; 0 when absent or unreadable. */
function retryAfterMs(header: string | null): number {
  if (!header) return 0;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : 0;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Aborted('aborted'));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Aborted('aborted'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** A client for one endpoint and model; a TypeError names a bad option. */
export function createChatClient(opts: ChatClientOptions): ChatClient {
  if (typeof opts.url !== 'string' || !/^https?:\/\/[^/]/.test(opts.url)) throw new TypeError(`chat client: url must be an http(s) URL, got ${JSON.stringify(opts.url)}`);
  if (typeof opts.model !== 'string' || opts.model.trim() === '') throw new TypeError('chat client: model (the served model name) is required');
  const whole = (name: string, v: number | undefined, def: number, min: number) => {
    const x = v ?? def;
    if (!(Number.isInteger(x) && x >= min)) throw new TypeError(`chat client: ${name} must be a whole number >= ${min}, got ${String(v)}`);
    return x;
  };
  const timeoutMs = whole('timeoutMs', opts.timeoutMs, 120_000, 1);
  const retries = whole('retries', opts.retries, 3, 0);
  const retryDelayMs = whole('retryDelayMs', opts.retryDelayMs, 1000, 0);
  const fetchFn = opts.fetch ?? globalThis.fetch;
  const endpoint = `${opts.url.replace(/\/+$/, '').replace(/\/v1$/, '')}/v1/chat/completions`;
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}) };

  const chat = async (req: ChatRequest, signal?: AbortSignal): Promise<ChatReply> => {
    const body = JSON.stringify({
      model: opts.model,
      messages: req.messages.map((m) => ({ role: m.role, content: m.content })),
      ...(req.temperature !== undefined ? { temperature: req.temperature } : {}),
      ...(req.maxTokens !== undefined ? { max_tokens: req.maxTokens } : {}),
      ...(req.seed !== undefined ? { seed: req.seed } : {}),
      ...(req.schema ? { response_format: { type: 'json_schema', json_schema: { name: req.schema.name, strict: true, schema: req.schema.schema } } } : {}),
      stream: false,
    });
    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted) throw new Aborted('aborted');
      const ac = new AbortController();
      const onAbort = () => ac.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        ac.abort();
      }, timeoutMs);
      let why: string;
      let status: number | undefined;
      let wait = 0;
      try {
        const res = await fetchFn(endpoint, { method: 'POST', headers, body, signal: ac.signal });
        const text = await res.text();
        if (res.ok) return { content: contentOf(text, endpoint, attempt), attempts: attempt };
        status = res.status;
        why = `answered HTTP ${res.status}: ${snippet(text)}`;
        // Other 4xx (a bad request, an unknown model, a wrong key) will not get better by waiting.
        if (!(status === 408 || status === 429 || status >= 500)) throw new ChatError(`POST ${endpoint} ${why}`, endpoint, attempt, status);
        wait = retryAfterMs(res.headers.get('retry-after'));
      } catch (err) {
        if (err instanceof ChatError) throw err;
        if (signal?.aborted) throw new Aborted('aborted');
        const cause = (err as { cause?: unknown }).cause;
        why = timedOut ? `timed out after ${timeoutMs} ms` : `failed: ${message(err)}${cause ? ` (${message(cause)})` : ''}`;
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      }
      if (attempt > retries) throw new ChatError(`POST ${endpoint} ${why} (${attempt} attempt${attempt > 1 ? 's' : ''})`, endpoint, attempt, status);
      const backoff = Math.min(MAX_BACKOFF_MS, retryDelayMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
      await sleep(Math.min(MAX_BACKOFF_MS, Math.max(backoff, wait)), signal);
    }
  };
  return { url: opts.url, model: opts.model, chat };
}

/** choices[0].message.content of a chat-completions reply, or a ChatError saying what is wrong. */
function contentOf(text: string, url: string, attempts: number): string {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ChatError(`POST ${url}: the reply is not JSON: ${snippet(text)}`, url, attempts);
  }
  const content = (json as { choices?: { message?: { content?: unknown } }[] })?.choices?.[0]?.message?.content;
  if (typeof content !== 'string') throw new ChatError(`POST ${url}: the reply has no choices[0].message.content string: ${snippet(text)}`, url, attempts);
  return content;
}

/** A reply the caller could not use even after its one re-ask. */
export class ReplyError extends Error {
  override readonly name = 'ReplyError';
  constructor(
    message: string,
    readonly problems: string[],
    readonly attempts: number,
  ) {
    super(message);
  }
}

/** JSON out of a reply: the whole text, or the one fenced block some servers wrap it in. */
function parseJsonReply(text: string): { value?: unknown; problem?: string } {
  const fenced = /^\s*```(?:json)?\s*\n([\s\S]*?)\n\s*```\s*$/.exec(text);
  try {
    return { value: JSON.parse(fenced ? fenced[1] : text) };
  } catch (err) {
    return { problem: `the reply is not valid JSON (${message(err)}): ${snippet(text)}` };
  }
}

export interface AskJsonOptions<T> {
  /** Turns the parsed JSON into T, or lists what is wrong with it (empty list: fine). */
  check(value: unknown): { value?: T; problems: string[] };
  /** The user turn of the one re-ask, quoting the problems. */
  repair(problems: string[]): string;
}

export interface JsonAnswer<T> {
  value: T;
  /** Whether the first reply was unusable and the re-ask fixed it. */
  repaired: boolean;
  /** HTTP attempts over both asks. */
  attempts: number;
}

/**
 * Asks for a JSON reply under `req.schema`; an unparseable or failing reply is re-asked once
 * (the bad reply and the problems go back to the model), then given up with a ReplyError.
 */
export async function askJson<T>(client: ChatClient, req: ChatRequest, opts: AskJsonOptions<T>, signal?: AbortSignal): Promise<JsonAnswer<T>> {
  let attempts = 0;
  let messages = req.messages;
  let problems: string[] = [];
  for (let ask = 0; ask < 2; ask++) {
    const reply = await client.chat({ ...req, messages }, signal);
    attempts += reply.attempts;
    const parsed = parseJsonReply(reply.content);
    const checked = parsed.problem ? { problems: [parsed.problem] } : opts.check(parsed.value);
    if (checked.problems.length === 0 && checked.value !== undefined) return { value: checked.value, repaired: ask > 0, attempts };
    problems = checked.problems.length ? checked.problems : ['the reply is empty'];
    messages = [...req.messages, { role: 'assistant', content: reply.content }, { role: 'user', content: opts.repair(problems) }];
  }
  throw new ReplyError(`the reply was unusable twice (asked once more with the problems): ${problems.join('; ')}`, problems, attempts);
}
