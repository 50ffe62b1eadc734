// The chat-completions client against a loopback server that follows the OpenAI chat-completions
// protocol (test/helpers/openai_chat_fixture.ts); no LLM runs here: every reply, 500, hang and
// dropped connection below is scripted by the test.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Aborted, askJson, ChatError, createChatClient, ReplyError } from '../../src/rubrics/chat_client.js';
import { startChatFixture, type FixtureReply } from '../helpers/openai_chat_fixture.js';

/** A fixture answering the scripted replies in order (then "ok"). */
async function scripted(replies: FixtureReply[]) {
  return startChatFixture({ models: ['m'], reply: (_b, n) => replies[n] ?? { content: 'ok' } });
}

const msgs = [{ role: 'user', content: 'Is 1 g of paracetamol safe?' }];

test('one request in the protocol shape; the content and one attempt come back', async () => {
  const f = await scripted([{ content: '{"score": 6, "reason": "x"}' }]);
  try {
    const c = createChatClient({ url: `${f.url}/v1/`, model: 'm', retryDelayMs: 0 });
    const schema = { name: 'difficulty', schema: { type: 'object' } };
    const r = await c.chat({ messages: msgs, temperature: 0, maxTokens: 50, seed: 3, schema });
    assert.equal(r, { content: '{"score": 6, "reason": "x"}', attempts: 1 });
    assert.is(f.requests.length, 1);
    const b = f.requests[0];
    assert.equal([b.model, b.messages, b.temperature, b.max_tokens, b.seed, b.stream], ['m', msgs, 0, 50, 3, false]);
    assert.equal(b.response_format, { type: 'json_schema', json_schema: { name: 'difficulty', strict: true, schema: { type: 'object' } } });
  } finally {
    await f.close();
  }
});

test('HTTP 500 then success: retried; 429 with Retry-After waits that long', async () => {
  const f = await scripted([{ status: 500 }, { status: 429, headers: { 'retry-after': '0.4' } }, { content: 'fine' }]);
  try {
    const c = createChatClient({ url: f.url, model: 'm', retryDelayMs: 0 });
    const t0 = Date.now();
    const r = await c.chat({ messages: msgs });
    assert.equal(r, { content: 'fine', attempts: 3 });
    assert.ok(Date.now() - t0 >= 390, `waited ${Date.now() - t0} ms for Retry-After 0.4 s`);
  } finally {
    await f.close();
  }
});

test('a timeout and a dropped connection are retried; the backoff doubles (jitter in [0.5, 1])', async () => {
  const f = await scripted([{ hang: true }, { drop: true }, { content: 'late but fine' }]);
  try {
    const c = createChatClient({ url: f.url, model: 'm', timeoutMs: 150, retryDelayMs: 100 });
    const t0 = Date.now();
    const r = await c.chat({ messages: msgs });
    assert.equal(r, { content: 'late but fine', attempts: 3 });
    // 150 ms timeout + backoffs of at least 50 and 100 ms.
    assert.ok(Date.now() - t0 >= 300, `${Date.now() - t0} ms`);
  } finally {
    await f.close();
  }
});

test('giving up after retries + 1 attempts: the error names the URL, the status, the body and the attempts', async () => {
  const f = await startChatFixture({ reply: () => ({ status: 503, body: 'upstream overloaded, try later' }) });
  try {
    const c = createChatClient({ url: f.url, model: 'm', retries: 2, retryDelayMs: 0 });
    const err = await c.chat({ messages: msgs }).catch((e: unknown) => e);
    assert.instance(err, ChatError);
    const e = err as ChatError;
    assert.is(f.requests.length, 3);
    assert.equal([e.attempts, e.status], [3, 503]);
    assert.match(e.message, `POST ${f.url}/v1/chat/completions answered HTTP 503: upstream overloaded, try later (3 attempts)`);
  } finally {
    await f.close();
  }
});

test('other 4xx are not retried: an unknown model is one request and a 404', async () => {
  const f = await scripted([]);
  try {
    const c = createChatClient({ url: f.url, model: 'not-served', retryDelayMs: 0 });
    const err = (await c.chat({ messages: msgs }).catch((e: unknown) => e)) as ChatError;
    assert.instance(err, ChatError);
    assert.equal([err.status, err.attempts], [404, 1]);
    assert.match(err.message, /does not exist/);
    assert.throws(() => createChatClient({ url: 'localhost:8000', model: 'm' }), /http\(s\) URL/);
  } finally {
    await f.close();
  }
});

test('the caller\'s abort stops a hanging request at once, without retries', async () => {
  const f = await scripted([{ hang: true }]);
  try {
    const c = createChatClient({ url: f.url, model: 'm', timeoutMs: 60_000 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const t0 = Date.now();
    const err = await c.chat({ messages: msgs }, ac.signal).catch((e: unknown) => e);
    assert.instance(err, Aborted);
    assert.ok(Date.now() - t0 < 2000);
    assert.is(f.requests.length, 1);
  } finally {
    await f.close();
  }
});

const check = (v: unknown) => (typeof (v as { n?: unknown })?.n === 'number' ? { value: (v as { n: number }).n, problems: [] } : { problems: ['"n" must be a number'] });
const repair = (problems: string[]) => `Fix: ${problems.join('; ')}`;

test('askJson: broken JSON is re-asked once with the bad reply and the problems; a fenced block is accepted', async () => {
  const f = await scripted([{ content: '{"n": 4' }, { content: '```json\n{"n": 4}\n```' }]);
  try {
    const c = createChatClient({ url: f.url, model: 'm', retryDelayMs: 0 });
    const r = await askJson(c, { messages: msgs }, { check, repair });
    assert.equal(r, { value: 4, repaired: true, attempts: 2 });
    const again = f.requests[1].messages;
    assert.equal(again.slice(0, 2), [...msgs, { role: 'assistant', content: '{"n": 4' }]);
    assert.match(again[2].content, /^Fix: the reply is not valid JSON/);
  } finally {
    await f.close();
  }
});

test('askJson: unusable twice is a ReplyError with the last problems (two requests, no third)', async () => {
  const f = await scripted([{ content: 'I think it is about four.' }, { content: '{"n": "four"}' }]);
  try {
    const c = createChatClient({ url: f.url, model: 'm', retryDelayMs: 0 });
    const err = (await askJson(c, { messages: msgs }, { check, repair }).catch((e: unknown) => e)) as ReplyError;
    assert.instance(err, ReplyError);
    assert.equal(err.problems, ['"n" must be a number']);
    assert.is(err.attempts, 2);
    assert.is(f.requests.length, 2);
  } finally {
    await f.close();
  }
});

test.run();
