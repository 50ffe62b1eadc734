// The reward server over real loopback HTTP (127.0.0.1, port 0): /v1/score and /get_reward give
// what CriteriaRewardModel.scoreResponses gives for the same inputs (the expected values), batched
// or not; concurrent requests share forward passes; tensors do not pile up; /health and /metrics.
import * as tf from '@tensorflow/tfjs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RubricRecord } from '../../src/data/schema.js';
import type { CriteriaRewardModel } from '../../src/reward/model.js';
import { createRewardServer, type RewardServer } from '../../src/serve/server.js';
import { get, post, testRecords, tinyRewardModel } from './helpers.js';

let rm: CriteriaRewardModel;
let records: RubricRecord[];

test.before(async () => {
  rm = await tinyRewardModel();
  records = await testRecords();
});
test.after(() => rm.dispose());

async function started(opts: Parameters<typeof createRewardServer>[1] = {}): Promise<{ s: RewardServer; url: string }> {
  const s = createRewardServer(rm, { records, ...opts });
  await s.ready;
  const { url } = await s.listen({ host: '127.0.0.1', port: 0 });
  return { s, url };
}

/** The ChatML text OpenRLHF's dataset gives as a prompt (apply_chat_template, generation prompt on). */
const chatml = (r: RubricRecord) => rm.tokenizer.applyChatTemplate(r.prompt, { addGenerationPrompt: true });

test('/health is 503 until the model is warmed up, then 200', async () => {
  // The warm-up pass is held until `open()`: the server is loading until then.
  const real = rm.score.bind(rm);
  let open = () => {};
  const gate = new Promise<void>((r) => (open = r));
  rm.score = (batch, tiers) => {
    const logits = real(batch, tiers);
    const data = logits.data.bind(logits);
    logits.data = (async () => (await gate, data())) as typeof logits.data;
    return logits;
  };
  const s = createRewardServer(rm, { records });
  const before = await s.app.inject({ method: 'GET', url: '/health' });
  assert.is(before.statusCode, 503);
  assert.is(before.json().status, 'loading');
  const early = await s.app.inject({ method: 'POST', url: '/v1/score', payload: { prompt: 'hi', responses: ['x'], record_id: records[0].id } });
  assert.is(early.statusCode, 503);
  assert.ok(early.headers['retry-after']);
  open();
  rm.score = real;
  await s.ready;
  assert.is((await s.app.inject({ method: 'GET', url: '/health' })).statusCode, 200);
  await s.close();
});

test('/v1/score equals scoreResponses, with criteria or a record_id, with a string prompt too', async () => {
  const { s, url } = await started();
  const r = records[0];
  const texts = r.responses.map((x) => x.text);
  const want = await rm.scoreResponses(r.prompt, texts, r.criteria);
  for (const body of [{ prompt: r.prompt, responses: texts, criteria: r.criteria }, { prompt: r.prompt, responses: texts, record_id: r.id }]) {
    const a = await post(`${url}/v1/score`, body);
    assert.is(a.status, 200, JSON.stringify(a.body));
    assert.is(a.body.results.length, texts.length);
    a.body.results.forEach((got: any, i: number) => {
      assert.ok(Math.abs(got.reward - want[i].reward) < 1e-6, `reward ${got.reward} vs ${want[i].reward}`);
      for (const k of ['s1', 's2', 's3'] as const) assert.ok(Math.abs(got[k] - want[i].scores[k]) < 1e-6, k);
      assert.equal(got.criteria.map((c: any) => [c.id, c.tier]), r.criteria.map((c) => [c.id, c.tier]));
      got.criteria.forEach((c: any, j: number) => assert.ok(Math.abs(c.p_met - want[i].probabilities[j]) < 1e-6));
      assert.is(got.truncated, false);
    });
  }
  const single = await post(`${url}/v1/score`, { prompt: 'I have a headache.', responses: ['Rest and drink water.'], criteria: r.criteria });
  const wantSingle = await rm.scoreResponses([{ role: 'user', content: 'I have a headache.' }], ['Rest and drink water.'], r.criteria);
  assert.ok(Math.abs(single.body.results[0].reward - wantSingle[0].reward) < 1e-6);
  await s.close();
});

test('concurrent requests merge into shared forward passes; each equals its unbatched score; tensors stay flat', async () => {
  const passes: number[] = [];
  const { s, url } = await started({ maxWaitMs: 30, maxBatchTokens: 1 << 20, onBatch: (rows) => passes.push(rows) });
  const r = records[0];
  const bodies = r.responses.map((x) => ({ prompt: r.prompt, responses: [x.text], record_id: r.id }));
  const want = await rm.scoreResponses(r.prompt, r.responses.map((x) => x.text), r.criteria);
  await post(`${url}/v1/score`, bodies[0]); // any lazily made tensors exist from here on
  const tensors = tf.memory().numTensors;
  passes.length = 0;
  for (let round = 0; round < 3; round++) {
    const answers = await Promise.all(bodies.map((b) => post(`${url}/v1/score`, b)));
    answers.forEach((a, i) => {
      assert.is(a.status, 200);
      assert.ok(Math.abs(a.body.results[0].reward - want[i].reward) < 1e-6, `round ${round} response ${i}`);
    });
  }
  assert.ok(passes.length < 3 * bodies.length, `requests shared passes: ${passes.join(',')}`);
  assert.ok(Math.max(...passes) > r.criteria.length, `a pass held more than one request's rows: ${passes.join(',')}`);
  // A token budget smaller than one request splits it over passes, with the same results.
  const { s: small, url: smallUrl } = await started({ maxBatchTokens: 1 });
  const split = await post(`${smallUrl}/v1/score`, { prompt: r.prompt, responses: r.responses.map((x) => x.text), record_id: r.id });
  split.body.results.forEach((got: any, i: number) => assert.ok(Math.abs(got.reward - want[i].reward) < 1e-6));
  await small.close();
  assert.is(tf.memory().numTensors, tensors, 'no tensor left behind by served requests');
  await s.close();
});

test('maxBatchTokens 0: no batching, one request per forward pass, the same results', async () => {
  const passes: number[] = [];
  const { s, url } = await started({ maxWaitMs: 30, maxBatchTokens: 0, onBatch: (rows) => passes.push(rows) });
  const r = records[0];
  const want = await rm.scoreResponses(r.prompt, r.responses.map((x) => x.text), r.criteria);
  passes.length = 0; // the warm-up pass
  const answers = await Promise.all(r.responses.map((x) => post(`${url}/v1/score`, { prompt: r.prompt, responses: [x.text], record_id: r.id })));
  answers.forEach((a, i) => assert.ok(Math.abs(a.body.results[0].reward - want[i].reward) < 1e-6, `response ${i}`));
  assert.equal(passes, r.responses.map(() => r.criteria.length), 'each pass holds exactly one request');
  await s.close();
});

test('/get_reward speaks OpenRLHF: query = prompt + response, labels = record ids or JSON criteria', async () => {
  const { s, url } = await started();
  const [a, b] = records;
  const pa = chatml(a), pb = chatml(b);
  const ra = a.responses[0].text, rb = b.responses[1].text;
  const body = { query: [`${pa}${ra}<|im_end|>`, `${pb}<think>\nhmm\n</think>\n\n${rb}<|im_end|><|endoftext|>`, `${pa}${ra}<|im_end|>`], prompts: [pa, pb, pa], labels: [a.id, b.id, JSON.stringify({ criteria: a.criteria })] };
  const got = await post(`${url}/get_reward`, body);
  assert.is(got.status, 200, JSON.stringify(got.body));
  const wa = (await rm.scoreResponses(a.prompt, [ra], a.criteria))[0];
  const wb = (await rm.scoreResponses(b.prompt, [rb], b.criteria))[0];
  const want = [wa, wb, wa];
  assert.equal(Object.keys(got.body).sort(), ['extra_logs', 'rewards', 'scores', 'truncated']);
  want.forEach((w, i) => {
    assert.ok(Math.abs(got.body.rewards[i] - w.reward) < 1e-6, `rewards[${i}]`);
    assert.is(got.body.scores[i], got.body.rewards[i]);
    for (const k of ['s1', 's2', 's3'] as const) assert.ok(Math.abs(got.body.extra_logs[k][i] - w.scores[k]) < 1e-6, `${k}[${i}]`);
  });
  await s.close();
});

test('an over-long response is cut by the ECI rules and the answer says so', async () => {
  const { s, url } = await started();
  const r = records[0];
  const long = 'The patient should rest. '.repeat(400);
  const a = await post(`${url}/v1/score`, { prompt: r.prompt, responses: [long, 'Short.'], record_id: r.id });
  assert.is(a.status, 200);
  assert.is(a.body.results[0].truncated, true);
  assert.ok(a.body.results[0].truncation.response_tokens_cut + a.body.results[0].truncation.response_chars_cut > 0);
  assert.is(a.body.results[1].truncated, false);
  assert.not.ok('truncation' in a.body.results[1]);
  const want = await rm.scoreResponses(r.prompt, [long], r.criteria); // scoreResponses cuts by the same rules
  assert.ok(Math.abs(a.body.results[0].reward - want[0].reward) < 1e-6);
  await s.close();
});

test('/metrics: requests and errors by route and code, latency, batch sizes, queue depth, tensors, RSS', async () => {
  const { s, url } = await started();
  await post(`${url}/v1/score`, { prompt: 'x', responses: ['y'], record_id: records[0].id });
  await post(`${url}/v1/score`, { prompt: 'x', responses: [], record_id: records[0].id });
  const m = await get(`${url}/metrics`);
  assert.is(m.status, 200);
  assert.match(m.text, /promedical_requests_total\{route="\/v1\/score",code="200"\} 1/);
  assert.match(m.text, /promedical_requests_total\{route="\/v1\/score",code="400"\} 1/);
  assert.match(m.text, /promedical_request_errors_total\{route="\/v1\/score",code="400"\} 1/);
  assert.match(m.text, /promedical_request_duration_seconds_bucket\{route="\/v1\/score",le="\+Inf"\} 2/);
  assert.match(m.text, /promedical_batch_rows_count \d+/);
  assert.match(m.text, /promedical_queue_depth 0/);
  assert.match(m.text, /# TYPE promedical_request_duration_seconds histogram/);
  assert.match(m.text, new RegExp(`promedical_tensors ${tf.memory().numTensors}\\n`));
  const rss = Number(/process_resident_memory_bytes (\d+)/.exec(m.text)?.[1]);
  assert.ok(Math.abs(rss - process.memoryUsage.rss()) < 64 * 2 ** 20, `RSS ${rss} is this process's`);
  await s.close();
});

test.run();
