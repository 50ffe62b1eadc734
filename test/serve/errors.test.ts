// Bad input never crashes the server or touches other requests: each case is a JSON error
// { error: { code, message, field } } with its 4xx status, and the next request is served
// normally. A full queue is 503 with Retry-After, a slow request 504, a vanished client is dropped.
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RubricRecord } from '../../src/data/schema.js';
import type { CriteriaRewardModel } from '../../src/reward/model.js';
import { createRewardServer, type RewardServer } from '../../src/serve/server.js';
import { get, post, testRecords, tinyRewardModel } from './helpers.js';

let rm: CriteriaRewardModel;
let records: RubricRecord[];
let server: RewardServer;
let url: string;

test.before(async () => {
  rm = await tinyRewardModel();
  records = await testRecords();
  server = createRewardServer(rm, { records, maxBodyBytes: 64 * 1024 });
  await server.ready;
  ({ url } = await server.listen({ port: 0 }));
});
test.after(async () => {
  await server.close();
  rm.dispose();
});

/** The server still answers /health and a good request after `what`. */
async function healthy(what: string): Promise<void> {
  assert.is((await get(`${url}/health`)).status, 200, `healthy after ${what}`);
  const ok = await post(`${url}/v1/score`, { prompt: 'I feel dizzy.', responses: ['Sit down.'], record_id: records[0].id });
  assert.is(ok.status, 200, `a good request after ${what}: ${JSON.stringify(ok.body)}`);
}

test('each bad request is a JSON error with the right status, code and field; the server stays healthy', async () => {
  const r = records[0];
  const good = { prompt: r.prompt, responses: ['ok'], criteria: r.criteria };
  const prompt = rm.tokenizer.applyChatTemplate(r.prompt, { addGenerationPrompt: true });
  const cases: [string, string, unknown, number, string, string | null][] = [
    ['malformed JSON', '/v1/score', '{"prompt": "x", "responses": [', 400, 'invalid_json', null],
    ['NaN is not JSON', '/v1/score', '{"prompt": "x", "responses": ["a"], "criteria": [{"id": "c", "text": "t", "tier": "safety", "weight": NaN}]}', 400, 'invalid_json', null],
    ['a body that is not an object', '/v1/score', '[1, 2]', 400, 'invalid_request', null],
    ['responses missing', '/v1/score', { prompt: 'x', criteria: r.criteria }, 400, 'invalid_request', 'responses'],
    ['responses empty', '/v1/score', { ...good, responses: [] }, 400, 'invalid_request', 'responses'],
    ['a response of the wrong type', '/v1/score', { ...good, responses: ['a', 7] }, 400, 'invalid_request', 'responses[1]'],
    ['prompt of the wrong type', '/v1/score', { ...good, prompt: 42 }, 400, 'invalid_request', 'prompt'],
    ['a message without content', '/v1/score', { ...good, prompt: [{ role: 'user' }] }, 400, 'invalid_request', 'prompt'],
    ['unknown tier', '/v1/score', { ...good, criteria: [{ id: 'c', text: 't', tier: 'style' }] }, 400, 'invalid_request', 'criteria[0].tier'],
    ['a huge weight', '/v1/score', '{"prompt": "x", "responses": ["a"], "criteria": [{"id": "c", "text": "t", "tier": "proficiency", "weight": 1e999}]}', 400, 'invalid_request', 'criteria[0].weight'],
    ['a negative weight', '/v1/score', { ...good, criteria: [{ id: 'c', text: 't', tier: 'proficiency', weight: -1 }] }, 400, 'invalid_request', 'criteria[0].weight'],
    ['duplicate criterion ids', '/v1/score', { ...good, criteria: [r.criteria[0], r.criteria[0]] }, 400, 'invalid_request', 'criteria[1].id'],
    ['neither criteria nor record_id', '/v1/score', { prompt: 'x', responses: ['a'] }, 400, 'invalid_request', 'criteria'],
    ['both criteria and record_id', '/v1/score', { ...good, record_id: r.id }, 400, 'invalid_request', 'record_id'],
    ['unknown record id', '/v1/score', { prompt: 'x', responses: ['a'], record_id: 'no-such-record' }, 422, 'unknown_record', 'record_id'],
    ['get_reward without labels', '/get_reward', { query: ['a'], prompts: ['a'] }, 400, 'invalid_request', 'labels'],
    ['get_reward with fewer prompts than queries', '/get_reward', { query: ['a', 'b'], prompts: ['a'], labels: [r.id, r.id] }, 400, 'invalid_request', 'prompts'],
    ['a query that does not start with its prompt', '/get_reward', { query: ['something else'], prompts: [prompt], labels: [r.id] }, 422, 'query_prompt_mismatch', 'query[0]'],
    ['an unknown record label', '/get_reward', { query: [`${prompt}hi`], prompts: [prompt], labels: ['nope'] }, 422, 'unknown_record', 'labels[0]'],
    ['a JSON label with an unknown tier', '/get_reward', { query: [`${prompt}hi`], prompts: [prompt], labels: [JSON.stringify([{ id: 'c', text: 't', tier: 'x' }])] }, 400, 'invalid_request', 'labels[0].criteria[0].tier'],
    ['a null label', '/get_reward', { query: [`${prompt}hi`], prompts: [prompt], labels: [null] }, 400, 'invalid_request', 'labels[0]'],
    ['a body over --max-body', '/v1/score', { ...good, responses: ['x'.repeat(70 * 1024)] }, 413, 'body_too_large', null],
  ];
  for (const [what, route, body, status, code, field] of cases) {
    const a = await post(`${url}${route}`, body);
    assert.is(a.status, status, `${what}: ${JSON.stringify(a.body)}`);
    assert.is(a.body.error.code, code, `${what}: ${JSON.stringify(a.body)}`);
    assert.is(a.body.error.field, field, `${what}: ${JSON.stringify(a.body)}`);
    assert.type(a.body.error.message, 'string');
    await healthy(what);
  }
  const nf = await get(`${url}/nope`);
  assert.is(nf.status, 404);
  assert.is(JSON.parse(nf.text).error.code, 'not_found');
  const text = await fetch(`${url}/v1/score`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' });
  assert.is(text.status, 415);
  await healthy('a text/plain body');
});

test('a criterion that cannot fit with the last turn is 422 does_not_fit', async () => {
  const a = await post(`${url}/v1/score`, { prompt: 'word '.repeat(2000), responses: ['a'], record_id: records[0].id });
  assert.is(a.status, 422, JSON.stringify(a.body));
  assert.is(a.body.error.code, 'does_not_fit');
  assert.is(a.body.error.field, 'responses[0]');
  await healthy('an input that cannot fit');
});

test('a client that disconnects mid-body or mid-request does not disturb the server', async () => {
  const { port } = new URL(url);
  // Mid-body: headers promise 1000 bytes, 20 come, the socket closes.
  await new Promise<void>((resolve) => {
    const sock = net.connect(Number(port), '127.0.0.1', () => {
      sock.write('POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"prompt": "hello", ');
      setTimeout(() => sock.destroy(), 50);
    });
    sock.on('close', () => resolve());
    sock.on('error', () => {});
  });
  await healthy('a client gone mid-body');
  // Mid-request: a whole request whose client leaves before its answer.
  const ac = new AbortController();
  const body = JSON.stringify({ prompt: records[0].prompt, responses: records[0].responses.map((x) => x.text), record_id: records[0].id });
  const gone = fetch(`${url}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: ac.signal }).catch((e: Error) => e);
  setTimeout(() => ac.abort(), 2);
  assert.instance(await gone, Error);
  await healthy('a client gone mid-request');
  await server.batcher.drained();
  assert.is(server.batcher.depth, 0);
});

test('a full queue answers 503 with Retry-After; a request past --request-timeout is 504; others are served', async () => {
  const r = records[0];
  const s = createRewardServer(rm, { records, maxQueue: 2, maxWaitMs: 60_000 });
  await s.ready;
  const { url: u } = await s.listen({ port: 0 });
  const body = { prompt: r.prompt, responses: [r.responses[0].text], record_id: r.id };
  // Two requests wait (a batch would start only after 60 s); the third finds the queue full.
  const row = { ids: rm.tokenizer.encode('hello'), tier: 'safety' as const };
  const waiting = [s.batcher.score([row]), s.batcher.score([row])].map((p) => p.catch((e: Error) => e));
  const full = await post(`${u}/v1/score`, body);
  assert.is(full.status, 503, JSON.stringify(full.body));
  assert.is(full.body.error.code, 'queue_full');
  assert.is(full.headers.get('retry-after'), '1');
  s.batcher.flush(); // the waiting ones are scored now
  for (const w of await Promise.all(waiting)) assert.instance(w, Float32Array);
  assert.is(s.batcher.depth, 0);
  assert.is((await get(`${u}/health`)).status, 200);
  await s.close();

  const slow = createRewardServer(rm, { records, requestTimeoutMs: 50, maxWaitMs: 500 });
  await slow.ready; // the warm-up has no timeout
  const { url: v } = await slow.listen({ port: 0 });
  const late = await post(`${v}/v1/score`, body);
  assert.is(late.status, 504, JSON.stringify(late.body));
  assert.is(late.body.error.code, 'timeout');
  assert.is((await get(`${v}/health`)).status, 200);
  await slow.close();
});

test.run();
