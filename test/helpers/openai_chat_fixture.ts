// A loopback (127.0.0.1) stand-in for an OpenAI-compatible chat server. It follows the OpenAI
// chat-completions protocol: POST /v1/chat/completions with {model, messages: [{role, content}],
// temperature, max_tokens, seed, response_format: {type: "json_schema", json_schema: {name,
// schema, strict}}}, answered with a chat.completion object {id, object, created, model,
// choices: [{index, message: {role: "assistant", content}, finish_reason}], usage}; errors as
// {error: {message, type, param, code}} (400 for a malformed request, 404 for an unknown model or
// route). No LLM runs here: what each request gets back is the test's `reply` callback's script,
// e.g. JSON it wrote, broken JSON, an HTTP 500 (with Retry-After), a hang (the client's timeout),
// or a dropped connection (a network error).
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';

/** The request fields the fixture reads (the chat-completions request's subset). */
export interface ChatBody {
  model: string;
  messages: { role: string; content: string }[];
  temperature?: number;
  max_tokens?: number;
  seed?: number;
  response_format?: { type: string; json_schema?: { name: string; schema: Record<string, unknown>; strict?: boolean } };
  [key: string]: unknown;
}

export type FixtureReply =
  /** A normal reply whose message content is this text (JSON or not: the test decides). */
  | { content: string; delayMs?: number }
  /** An HTTP error with this body (an object is sent as JSON). */
  | { status: number; body?: unknown; headers?: Record<string, string> }
  /** Never answer (until the client gives up or the fixture closes). */
  | { hang: true }
  /** Close the connection without an answer. */
  | { drop: true };

export interface ChatFixtureOptions {
  /** Models served (others: 404 as OpenAI answers). Default: any. */
  models?: string[];
  /** The reply to the n-th (0-based, arrival order) valid request. */
  reply(body: ChatBody, n: number): FixtureReply | Promise<FixtureReply>;
}

export interface ChatFixture {
  /** Base URL, e.g. http://127.0.0.1:PORT (clients add /v1/chat/completions). */
  url: string;
  /** Every valid request, in arrival order. */
  requests: ChatBody[];
  /** The most requests seen in flight at once. */
  maxInFlight: number;
  close(): Promise<void>;
}

const errorBody = (message: string, type: string, code: number | string) => ({ error: { message, type, param: null, code } });

/** Why a request body breaks the protocol, or null. */
function protocolProblem(b: Record<string, unknown>): string | null {
  if (typeof b.model !== 'string' || b.model === '') return 'model: expected a string';
  if (!Array.isArray(b.messages) || b.messages.length === 0) return 'messages: expected a non-empty array';
  for (const [i, m] of (b.messages as unknown[]).entries()) {
    const msg = m as Record<string, unknown>;
    if (typeof m !== 'object' || m === null || !['system', 'user', 'assistant', 'tool', 'developer'].includes(msg.role as string)) return `messages[${i}].role: expected system, user, assistant, tool or developer`;
    if (typeof msg.content !== 'string') return `messages[${i}].content: expected a string`;
  }
  const rf = b.response_format as Record<string, unknown> | undefined;
  if (rf !== undefined) {
    if (!['text', 'json_object', 'json_schema'].includes(rf?.type as string)) return 'response_format.type: expected text, json_object or json_schema';
    const js = rf.json_schema as Record<string, unknown> | undefined;
    if (rf.type === 'json_schema' && !(js && typeof js.name === 'string' && typeof js.schema === 'object' && js.schema !== null)) return 'response_format.json_schema: expected {name, schema}';
  }
  return null;
}

export async function startChatFixture(opts: ChatFixtureOptions): Promise<ChatFixture> {
  const fixture: ChatFixture = { url: '', requests: [], maxInFlight: 0, close: async () => {} };
  const sockets = new Set<Socket>();
  let inFlight = 0;
  const send = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json', ...headers });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') return send(res, 404, errorBody(`no route ${req.method} ${req.url}`, 'NotFoundError', 404));
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    } catch {
      return send(res, 400, errorBody('the body is not JSON', 'BadRequestError', 400));
    }
    const problem = protocolProblem(body);
    if (problem) return send(res, 400, errorBody(problem, 'BadRequestError', 400));
    if (opts.models && !opts.models.includes(body.model as string)) return send(res, 404, errorBody(`The model \`${String(body.model)}\` does not exist.`, 'NotFoundError', 'model_not_found'));
    const n = fixture.requests.push(body as ChatBody) - 1;
    inFlight++;
    fixture.maxInFlight = Math.max(fixture.maxInFlight, inFlight);
    try {
      const r = await opts.reply(body as ChatBody, n);
      if ('hang' in r) return; // the socket stays open until the client aborts or close() ends it
      if ('drop' in r) return void req.socket.destroy();
      if ('status' in r) return send(res, r.status, r.body ?? errorBody('scripted failure', 'InternalServerError', r.status), r.headers);
      if (r.delayMs) await new Promise((resolve) => setTimeout(resolve, r.delayMs));
      send(res, 200, {
        id: `chatcmpl-fixture-${n}`,
        object: 'chat.completion',
        created: 1_700_000_000,
        model: body.model,
        choices: [{ index: 0, message: { role: 'assistant', content: r.content }, logprobs: null, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      });
    } finally {
      inFlight--;
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fixture.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fixture.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return fixture;
}
