// The reward server's wire formats: JSON schemas of the two scoring routes (fastify validates them
// before a handler runs), the error body { error: { code, message, field } }, and the parsing of
// OpenRLHF's remote-RM request (openrlhf/utils/agent.py, _fetch_rewards_via_http):
//   { "query": [prompt + response, decoded with special tokens], "prompts": [...], "labels": [...] }
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import type { ChatMessage } from '../data/chat.js';
import { TIERS, type Criterion } from '../data/schema.js';

/** A request the server refuses: HTTP status, a stable code, a message and the field it is about. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field: string | null = null,
    /** Seconds, sent as Retry-After (503). */
    readonly retryAfter?: number,
  ) {
    super(message);
  }

  body(): { error: { code: string; message: string; field: string | null } } {
    return { error: { code: this.code, message: this.message, field: this.field } };
  }
}

/** Starts `app` on `host` (default 127.0.0.1) and `port` (default 0: any free one) and gives
 * the port it got and its URL (IPv6 hosts bracketed). */
export async function listenOn(app: FastifyInstance, l: { host?: string; port?: number } = {}): Promise<{ host: string; port: number; url: string }> {
  const host = l.host ?? '127.0.0.1';
  await app.listen({ host, port: l.port ?? 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (l.port ?? 0);
  return { host, port, url: `http://${host.includes(':') ? `[${host}]` : host}:${port}` };
}

/** Sends `e` as its JSON body, with Retry-After when it has one. */
export function sendApiError(reply: FastifyReply, e: ApiError): FastifyReply {
  if (e.retryAfter !== undefined) reply.header('Retry-After', String(e.retryAfter));
  return reply.code(e.status).type('application/json').send(e.body());
}

/**
 * Every error of `app` answered as a JSON ApiError body: a failed JSON schema names the field
 * (an unknown field, a missing one, a value not allowed), fastify's own body errors keep their
 * status (413 body_too_large, 415, 400 invalid_json), anything else is a 500 whose stack goes
 * to `log`; an unknown route is 404.
 */
export function jsonErrors(app: FastifyInstance, log: (line: string) => void): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof ApiError) return sendApiError(reply, err);
    if (err.validation) {
      const v = err.validation[0];
      const p = v.params as { missingProperty?: string; additionalProperty?: string; allowedValues?: unknown[] };
      const extra = v.keyword === 'additionalProperties' ? p.additionalProperty : undefined;
      const field = fieldOf(v.instancePath, v.keyword === 'required' ? p.missingProperty : extra) || null;
      const what = v.keyword === 'enum' ? `${v.message}: ${(p.allowedValues ?? []).join(', ')}` : extra ? 'is not a field of this request' : (v.message ?? 'invalid');
      return sendApiError(reply, new ApiError(400, 'invalid_request', `${field ?? 'body'} ${what}`, field));
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    const code =
      err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'body_too_large'
      : err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'unsupported_media_type'
      : status === 400 && /JSON|Unexpected|body/i.test(`${err.code} ${err.message}`) ? 'invalid_json'
      : status < 500 ? 'bad_request' : 'internal';
    if (status >= 500) log(`error on ${req.method} ${req.url}: ${err.stack ?? err.message}`);
    return sendApiError(reply, new ApiError(status, code, status >= 500 ? 'internal error' : err.message, null));
  });
  app.setNotFoundHandler((req, reply) => sendApiError(reply, new ApiError(404, 'not_found', `no route ${req.method} ${req.url.split('?')[0]}`)));
}

const criterionSchema = {
  type: 'object',
  required: ['id', 'text', 'tier'],
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 1000 },
    text: { type: 'string', minLength: 1 },
    tier: { type: 'string', enum: [...TIERS] },
    weight: { type: 'number', minimum: 0, maximum: 1e12 },
  },
};

const messageSchema = {
  type: 'object',
  required: ['role', 'content'],
  properties: { role: { type: 'string', enum: ['system', 'user', 'assistant', 'tool'] }, content: { type: 'string' } },
};

/** POST /v1/score: { prompt, responses, criteria | record_id }. */
export const SCORE_SCHEMA = {
  type: 'object',
  required: ['prompt', 'responses'],
  properties: {
    prompt: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'array', minItems: 1, items: messageSchema }] },
    responses: { type: 'array', minItems: 1, items: { type: 'string' } },
    criteria: { type: 'array', minItems: 1, items: criterionSchema },
    record_id: { type: 'string', minLength: 1 },
  },
};

/** POST /get_reward: OpenRLHF's remote reward model request. */
export const GET_REWARD_SCHEMA = {
  type: 'object',
  required: ['query'],
  properties: {
    query: { type: 'array', minItems: 1, items: { type: 'string' } },
    prompts: { type: 'array', items: { type: 'string' } },
    labels: { type: 'array', items: { anyOf: [{ type: 'string' }, { type: 'null' }] } },
  },
};

export interface ScoreBody {
  prompt: string | ChatMessage[];
  responses: string[];
  criteria?: Criterion[];
  record_id?: string;
}

export interface GetRewardBody {
  query: string[];
  prompts?: string[];
  labels?: (string | null)[];
}

/** An Ajv instance path (/criteria/0/tier) as a field path (criteria[0].tier). */
export function fieldOf(instancePath: string, missing?: string): string {
  const parts = instancePath.split('/').filter(Boolean);
  if (missing) parts.push(missing);
  return parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

/** Checks what the schema cannot: unique criterion ids. */
export function checkCriteria(criteria: Criterion[], field: string): Criterion[] {
  const ids = new Set<string>();
  criteria.forEach((c, j) => {
    if (c.text.trim() === '') throw new ApiError(400, 'invalid_request', 'criterion text must not be blank', `${field}[${j}].text`);
    if (ids.has(c.id)) throw new ApiError(400, 'invalid_request', `criterion id "${c.id}" appears twice`, `${field}[${j}].id`);
    ids.add(c.id);
  });
  return criteria.map((c) => ({ id: c.id, text: c.text, tier: c.tier, ...(c.weight === undefined ? {} : { weight: c.weight }) }));
}

/** The criteria of an OpenRLHF label: JSON (an array of criteria or { criteria: [...] }). */
export function criteriaOfJsonLabel(label: string, field: string): Criterion[] {
  let value: unknown;
  try {
    value = JSON.parse(label);
  } catch {
    throw new ApiError(422, 'unknown_record', `label ${JSON.stringify(label.slice(0, 60))} is neither a record id of --records nor JSON criteria`, field);
  }
  const list = Array.isArray(value) ? value : (value as { criteria?: unknown } | null)?.criteria;
  if (!Array.isArray(list) || list.length === 0) throw new ApiError(400, 'invalid_request', 'a JSON label must be an array of criteria or { "criteria": [...] }, with at least one', field);
  list.forEach((c, j) => {
    const f = `${field}.criteria[${j}]`;
    if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new ApiError(400, 'invalid_request', 'expected a criterion { id, text, tier }', f);
    const o = c as Record<string, unknown>;
    if (typeof o.id !== 'string' || o.id === '') throw new ApiError(400, 'invalid_request', 'criterion id must be a non-empty string', `${f}.id`);
    if (typeof o.text !== 'string' || o.text.trim() === '') throw new ApiError(400, 'invalid_request', 'criterion text must be a non-empty string', `${f}.text`);
    if (!TIERS.includes(o.tier as never)) throw new ApiError(400, 'invalid_request', `unknown tier ${JSON.stringify(o.tier)}; allowed tiers: ${TIERS.join(', ')}`, `${f}.tier`);
    if (o.weight !== undefined && !(typeof o.weight === 'number' && Number.isFinite(o.weight) && o.weight >= 0 && o.weight <= 1e12)) throw new ApiError(400, 'invalid_request', 'weight must be a finite number >= 0', `${f}.weight`);
  });
  return checkCriteria(list as Criterion[], `${field}.criteria`);
}

const CHATML = /<\|im_start\|>(system|user|assistant|tool)\n([\s\S]*?)(?:<\|im_end\|>\n?|$)/g;

/**
 * A chat-templated prompt (ChatML, as OpenRLHF's dataset renders it with apply_chat_template) as
 * messages; the trailing generation header `<|im_start|>assistant\n` is dropped. Text without
 * ChatML markers is one user turn.
 */
export function messagesOfPrompt(prompt: string): ChatMessage[] {
  if (!prompt.includes('<|im_start|>')) return [{ role: 'user', content: prompt }];
  const out: ChatMessage[] = [];
  for (const m of prompt.matchAll(CHATML)) out.push({ role: m[1], content: m[2] });
  const last = out[out.length - 1];
  if (last && last.role === 'assistant' && /^(<think>\s*<\/think>\s*)?$/.test(last.content.trim())) out.pop();
  return out.length > 0 ? out : [{ role: 'user', content: prompt }];
}

/** The response part of an OpenRLHF query: after its prompt, without the trailing end-of-turn /
 * end-of-text tokens and a leading <think>...</think> block (the judge reads the final answer). */
export function responseOfQuery(query: string, prompt: string, field: string): string {
  if (!query.startsWith(prompt)) throw new ApiError(422, 'query_prompt_mismatch', 'the query does not start with its prompt (query = prompt + response)', field);
  return query
    .slice(prompt.length)
    .replace(/(<\|im_end\|>|<\|endoftext\|>|\s)*$/, '')
    .replace(/^\s*<think>[\s\S]*?<\/think>\s*/, '');
}
