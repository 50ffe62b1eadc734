// A loopback stand-in for vLLM's OpenAI-compatible server (vLLM itself cannot run here: it needs
// Python, PyTorch and an accelerator). It follows vLLM's protocol as its source defines it
// (vllm/entrypoints/openai: CompletionRequest / CompletionResponse / CompletionLogProbs, the
// completion server's choice order, the runtime LoRA routes): POST /v1/completions with token-id
// prompts, n, stop_token_ids (the stop token stays in token_ids), return_token_ids,
// return_tokens_as_token_ids and logprobs; choices prompt-major (index = prompt * n + j); errors as
// { error: { message, type, param, code } }; POST /v1/load_lora_adapter (400 when the name is
// loaded, 404 when the folder holds no adapter) and /v1/unload_lora_adapter (404 when unknown);
// 404 for a request naming a model it does not serve. What a completion holds comes from the
// test's `complete` callback. Scripted replies (status, body, or a hang) override the next
// requests to a route, to test failures.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

/** The /v1/completions request fields the fixture reads (vLLM's CompletionRequest subset). */
export interface CompletionBody {
  model?: string;
  prompt: number[][];
  n?: number;
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  repetition_penalty?: number;
  seed?: number;
  stop_token_ids?: number[];
  logprobs?: number | null;
  return_token_ids?: boolean;
  return_tokens_as_token_ids?: boolean;
  [key: string]: unknown;
}

/** One raw completion: up to max_tokens ids, and each one's log-prob. */
export interface RawCompletion {
  ids: number[];
  logprobs: number[];
}

export interface ScriptedReply {
  route: string;
  status?: number;
  /** JSON (objects) or raw text (strings). */
  body?: unknown;
  headers?: Record<string, string>;
  /** Never answer (until the fixture closes). */
  hang?: boolean;
}

export interface VllmFixture {
  url: string;
  /** Every request, in arrival order. */
  requests: { route: string; body: unknown }[];
  /** Loaded LoRA adapters: name -> path. */
  adapters: Map<string, string>;
  /** Replies used, first in first out, instead of the normal handling of their route. */
  script: ScriptedReply[];
  /** The most /v1/completions requests seen in flight at once. */
  maxInFlight: number;
  close(): Promise<void>;
}

export interface VllmFixtureOptions {
  /** The served model's name. */
  model: string;
  /** The n raw completions of one prompt (`model` is the base name or a loaded adapter's). */
  complete(prompt: number[], body: CompletionBody, model: string, promptIndex: number): Promise<RawCompletion[]>;
  onLoad?(name: string, lora_path: string): Promise<void> | void;
  onUnload?(name: string): Promise<void> | void;
  /** Delay before each completion reply, ms (to make concurrency observable). */
  delayMs?: number;
}

const errorBody = (message: string, type: string, code: number) => ({ error: { message, type, param: null, code } });

export async function startVllmFixture(opts: VllmFixtureOptions): Promise<VllmFixture> {
  const fixture: VllmFixture = { url: '', requests: [], adapters: new Map(), script: [], maxInFlight: 0, close: async () => {} };
  let inFlight = 0;
  const send = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json', ...headers });
    res.end(text);
  };

  const completions = async (body: CompletionBody): Promise<[number, unknown]> => {
    const served = body.model ?? opts.model;
    if (served !== opts.model && !fixture.adapters.has(served)) return [404, errorBody(`The model \`${served}\` does not exist.`, 'NotFoundError', 404)];
    if (!Array.isArray(body.prompt) || !body.prompt.every((p) => Array.isArray(p) && p.length > 0 && p.every((id) => Number.isInteger(id) && id >= 0))) {
      return [400, errorBody('prompt must be a list of token-id lists here', 'BadRequestError', 400)];
    }
    const n = body.n ?? 1;
    const max = body.max_tokens ?? 16;
    const stops = new Set(body.stop_token_ids ?? []);
    const choices: unknown[] = [];
    for (const [p, prompt] of body.prompt.entries()) {
      const outs = await opts.complete(prompt, body, served, p);
      outs.forEach((o, j) => {
        const end = o.ids.findIndex((id) => stops.has(id));
        const length = Math.min(end < 0 ? o.ids.length : end + 1, max);
        const ids = o.ids.slice(0, length);
        const stopped = end >= 0 && end < max;
        const tokens = ids.map((id) => (body.return_tokens_as_token_ids ? `token_id:${id}` : `<${id}>`));
        choices.push({
          index: p * n + j,
          text: tokens.join(''),
          logprobs: body.logprobs === undefined || body.logprobs === null ? null : {
            text_offset: tokens.map((_, k) => tokens.slice(0, k).join('').length),
            token_logprobs: o.logprobs.slice(0, length).map((v) => Math.max(v, -9999)),
            tokens,
            top_logprobs: tokens.map((t, k) => ({ [t]: Math.max(o.logprobs[k], -9999) })),
          },
          finish_reason: stopped ? 'stop' : 'length',
          stop_reason: stopped ? ids[length - 1] : null,
          token_ids: body.return_token_ids ? ids : null,
          prompt_token_ids: body.return_token_ids ? prompt : null,
        });
      });
    }
    // The protocol orders nothing but index: reply in reverse so that clients must map by it.
    choices.reverse();
    const completionTokens = choices.reduce((a: number, c) => a + ((c as { token_ids: number[] | null }).token_ids?.length ?? 0), 0);
    const promptTokens = body.prompt.reduce((a, p) => a + p.length, 0);
    return [200, {
      id: `cmpl-fixture-${fixture.requests.length}`, object: 'text_completion', created: Math.floor(Date.now() / 1000), model: served, choices,
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
    }];
  };

  const load = async (body: { lora_name?: string; lora_path?: string }): Promise<[number, unknown]> => {
    if (!body.lora_name || !body.lora_path) return [400, errorBody("Both 'lora_name' and 'lora_path' must be provided.", 'InvalidUserInput', 400)];
    if (fixture.adapters.has(body.lora_name)) return [400, errorBody(`The lora adapter '${body.lora_name}' has already been loaded.`, 'InvalidUserInput', 400)];
    if (!fs.existsSync(path.join(body.lora_path, 'adapter_config.json'))) return [404, errorBody(`Loading lora ${body.lora_name} failed: No adapter found for ${body.lora_path}`, 'NotFoundError', 404)];
    await opts.onLoad?.(body.lora_name, body.lora_path);
    fixture.adapters.set(body.lora_name, body.lora_path);
    return [200, `Success: LoRA adapter '${body.lora_name}' added successfully.`];
  };
  const unload = async (body: { lora_name?: string }): Promise<[number, unknown]> => {
    if (!body.lora_name || !fixture.adapters.has(body.lora_name)) return [404, errorBody(`The lora adapter '${body.lora_name}' cannot be found.`, 'NotFoundError', 404)];
    await opts.onUnload?.(body.lora_name);
    fixture.adapters.delete(body.lora_name);
    return [200, `Success: LoRA adapter '${body.lora_name}' removed successfully.`];
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const route = req.url ?? '';
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return send(res, 400, errorBody('the body is not JSON', 'BadRequestError', 400));
      }
      fixture.requests.push({ route, body });
      const k = fixture.script.findIndex((s) => s.route === route);
      if (k >= 0) {
        const [s] = fixture.script.splice(k, 1);
        if (s.hang) return;
        return send(res, s.status ?? 200, s.body ?? '', s.headers);
      }
      const handle = route === '/v1/completions' ? completions(body as CompletionBody)
        : route === '/v1/load_lora_adapter' ? load(body as object)
        : route === '/v1/unload_lora_adapter' ? unload(body as object)
        : Promise.resolve([404, errorBody('Not Found', 'NotFoundError', 404)] as [number, unknown]);
      const counted = route === '/v1/completions';
      if (counted) fixture.maxInFlight = Math.max(fixture.maxInFlight, ++inFlight);
      (async () => {
        if (counted && opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
        return handle;
      })()
        .then(([status, out]) => send(res, status, out))
        .catch((err: Error) => send(res, 500, errorBody(err.message, 'InternalServerError', 500)))
        .finally(() => counted && inFlight--);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fixture.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fixture.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return fixture;
}
