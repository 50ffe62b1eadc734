// rubrics prepare in-process against a loopback server that follows the OpenAI chat-completions
// protocol (test/helpers/openai_chat_fixture.ts). No LLM runs here: the judge's scores, the broken
// JSON, the 500s, the hangs and the candidates' answers are all written by this test.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataError } from '../../src/data/schema.js';
import { createChatClient } from '../../src/rubrics/chat_client.js';
import type { PreparedItem } from '../../src/rubrics/items.js';
import { parseEndpoints, prepareInstructions, readInstructions, type Instruction, type PrepareOptions } from '../../src/rubrics/prepare.js';
import { SettingsError, StageInterrupted } from '../../src/rubrics/stage.js';
import { startChatFixture, type ChatBody, type FixtureReply } from '../helpers/openai_chat_fixture.js';
import { kindOf, QUESTIONS, tagOf } from '../helpers/rubrics_script.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rubrics-prepare-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;
const newDir = () => path.join(tmp, `w${++dirs}`);

/** q1..q8, plus q9: q1 again with other case and punctuation (a near-duplicate, Jaccard 1). */
function instructions(): Instruction[] {
  const list = Object.entries(QUESTIONS).map(([id, text]) => ({ id, prompt: [{ role: 'user', content: text }], source: { format: 'promedical' } }));
  list.push({ id: 'q9', prompt: [{ role: 'user', content: QUESTIONS.q1.toUpperCase().replace('?', '??').replace('[Q1]', '[q1]') }], source: { format: 'promedical' } });
  return list;
}

/** The judge's scores: 4 and 10 fall outside 5-9; 5 and 9 are kept. */
const SCORES: Record<string, number> = { q1: 5, q2: 4, q3: 9, q4: 10, q5: 7, q6: 8, q7: 6, q8: 8 };
const answerText = (b: ChatBody) => `${b.model} answers ${tagOf(b)} (seed ${b.seed})`;

/** The normal script: scores above, answers naming model, tag and seed; `over` replaces some. */
function script(over: (b: ChatBody, kind: string, tag: string) => FixtureReply | undefined = () => undefined) {
  return (b: ChatBody): FixtureReply => {
    const kind = kindOf(b);
    const tag = tagOf(b);
    const r = over(b, kind, tag);
    if (r) return r;
    if (kind === 'judge') return { content: JSON.stringify({ score: SCORES[tag], reason: `scripted ${tag}` }) };
    return { content: answerText(b) };
  };
}

function options(url: string, work: string, extra: Partial<PrepareOptions> = {}): PrepareOptions {
  const client = (model: string) => createChatClient({ url, model, timeoutMs: 300, retries: 2, retryDelayMs: 1 });
  return { work, instructions: instructions(), judge: client('judge'), candidates: [client('alpha'), client('beta')], numCandidates: 2, concurrency: 1, ...extra };
}

const lines = (file: string) => fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));

test('end to end: duplicates dropped, 5 and 9 kept, 4 and 10 filtered, a 500 and a timeout retried, 2 x 2 candidates', async () => {
  const seen = new Map<string, number>();
  const f = await startChatFixture({
    reply: script((_b, kind, tag) => {
      const n = seen.get(`${kind}:${tag}`) ?? 0;
      seen.set(`${kind}:${tag}`, n + 1);
      if (kind === 'judge' && tag === 'q5' && n === 0) return { status: 500, body: 'boom' };
      if (kind === 'judge' && tag === 'q7' && n === 0) return { hang: true };
      return undefined;
    }),
  });
  const work = newDir();
  try {
    const summary = await prepareInstructions(options(f.url, work));
    assert.equal(summary, { instructions: 9, duplicates: 1, prepared: 6, filtered: 2, failed: 0, resumed: 0 });
    const prepared = lines(path.join(work, 'prepared.jsonl')) as PreparedItem[];
    assert.equal(prepared.map((p) => p.id), ['q1', 'q3', 'q5', 'q6', 'q7', 'q8'], 'scores 5 to 9 kept, in input order');
    assert.equal(prepared.map((p) => p.difficulty.score), [5, 9, 7, 8, 6, 8]);
    assert.equal(prepared[0].difficulty, { score: 5, reason: 'scripted q1', model: 'judge' });
    const q3 = prepared[1];
    assert.equal(q3.candidates.map((c) => [c.id, c.model]), [['c0', 'alpha'], ['c1', 'alpha'], ['c2', 'beta'], ['c3', 'beta']]);
    for (const c of q3.candidates) assert.match(c.text, new RegExp(`^${c.model} answers q3 \\(seed \\d+\\)$`));
    assert.is(new Set(q3.candidates.map((c) => c.text)).size, 4, 'each candidate asked with its own seed');
    assert.equal(q3.prompt, [{ role: 'user', content: QUESTIONS.q3 }]);
    assert.equal(lines(path.join(work, 'filtered.jsonl')), [{ id: 'q2', score: 4, reason: 'scripted q2' }, { id: 'q4', score: 10, reason: 'scripted q4' }]);
    assert.equal(lines(path.join(work, 'duplicates.jsonl')), [{ id: 'q9', duplicate_of: 'q1', jaccard: 1 }]);
    assert.is(fs.readFileSync(path.join(work, 'failures.jsonl'), 'utf8'), '');
    // Calls: one judge call per non-duplicate (two for q5 and q7), 4 candidates per kept item, none for q9.
    assert.equal([seen.get('judge:q5'), seen.get('judge:q7'), seen.get('judge:q1'), seen.get('judge:q9')], [2, 2, 1, undefined]);
    assert.is(f.requests.filter((b) => kindOf(b) === 'candidate').length, 6 * 4);
    const judged = f.requests.find((b) => kindOf(b) === 'judge')!;
    assert.equal([judged.temperature, judged.response_format?.json_schema?.name], [0, 'difficulty']);
  } finally {
    await f.close();
  }
});

test('failures are reported by instruction id: give-up after 3 attempts, broken JSON twice, a score of 11, a failed candidate', async () => {
  const seen = new Map<string, number>();
  const f = await startChatFixture({
    reply: script((b, kind, tag) => {
      const n = seen.get(`${kind}:${tag}`) ?? 0;
      seen.set(`${kind}:${tag}`, n + 1);
      if (kind === 'judge' && tag === 'q2') return { status: 502, body: 'bad gateway' };
      if (kind === 'judge' && tag === 'q3') return { content: '{"score": 9, "reason": ' };
      if (kind === 'judge' && tag === 'q5' && n === 0) return { content: 'Seven out of ten.' };
      if (kind === 'judge' && tag === 'q8') return { content: '{"score": 11, "reason": "very"}' };
      if (kind === 'candidate' && tag === 'q7' && b.model === 'beta') return { status: 500, body: 'beta is down' };
      return undefined;
    }),
  });
  const work = newDir();
  try {
    const summary = await prepareInstructions(options(f.url, work));
    assert.equal([summary.prepared, summary.filtered, summary.failed], [3, 1, 4]);
    assert.equal((lines(path.join(work, 'prepared.jsonl')) as PreparedItem[]).map((p) => p.id), ['q1', 'q5', 'q6'], 'q5 kept after one re-ask');
    const failures = lines(path.join(work, 'failures.jsonl'));
    assert.equal(failures.map((x) => [x.id, x.stage, x.attempts]), [['q2', 'prepare', 3], ['q3', 'prepare', 2], ['q7', 'prepare', 3], ['q8', 'prepare', 2]]);
    assert.match(failures[0].error, `difficulty judge (judge at ${f.url}): POST ${f.url}/v1/chat/completions answered HTTP 502: bad gateway (3 attempts)`);
    assert.match(failures[1].error, /not valid JSON/);
    assert.match(failures[2].error, new RegExp(`^candidate c[23] \\(beta at ${f.url}\\): .*HTTP 500: beta is down`));
    assert.match(failures[3].error, /"score" must be a whole number from 0 to 10, got 11/);
    assert.equal([seen.get('judge:q2'), seen.get('judge:q3'), seen.get('judge:q8')], [3, 2, 2]);
    // The re-ask quoted the problem back.
    const reask = f.requests.filter((b) => kindOf(b) === 'judge' && tagOf(b) === 'q5')[1];
    assert.match(reask.messages.at(-1)!.content, /not valid JSON/);
    assert.is(reask.messages.at(-2)!.content, 'Seven out of ten.');

    // A rerun retries the failed items (and only them) and replaces their failure records.
    const before = f.requests.length;
    const again = await prepareInstructions({ ...options(f.url, work) });
    assert.is(again.resumed, 4);
    const retried = new Set(f.requests.slice(before).map(tagOf));
    assert.equal([...retried].sort(), ['q2', 'q3', 'q7', 'q8']);
    assert.is(lines(path.join(work, 'failures.jsonl')).length, 4);
  } finally {
    await f.close();
  }
});

test('Ctrl-C mid-way, a torn last line, then a rerun: the same files as an uninterrupted run, finished items never asked again', async () => {
  const f = await startChatFixture({ reply: script() });
  const whole = newDir();
  await prepareInstructions(options(f.url, whole));
  await f.close();

  const work = newDir();
  const ac = new AbortController();
  const first = await startChatFixture({
    reply: script((_b, kind, tag) => {
      if (kind === 'judge' && tag === 'q7') {
        ac.abort(); // Ctrl-C while q7 is being judged
        return { hang: true };
      }
      return undefined;
    }),
  });
  const err = await prepareInstructions(options(first.url, work, { signal: ac.signal })).catch((e: unknown) => e);
  await first.close();
  assert.instance(err, StageInterrupted);
  assert.match((err as Error).message, /2 item\(s\) left \(6 done/);
  assert.equal((lines(path.join(work, 'prepared.jsonl')) as PreparedItem[]).map((p) => p.id), ['q1', 'q3', 'q5', 'q6']);
  // A crash in the middle of a write leaves half a line.
  fs.appendFileSync(path.join(work, 'prepared.jsonl'), '{"id":"q7","prompt":[{"ro');

  const second = await startChatFixture({ reply: script() });
  try {
    const logs: string[] = [];
    const summary = await prepareInstructions(options(second.url, work, { log: (l) => logs.push(l) }));
    assert.is(summary.resumed, 6);
    assert.ok(logs.some((l) => /torn last line/.test(l)), logs.join('\n'));
    const asked = second.requests.map((b) => `${kindOf(b)}:${tagOf(b)}`);
    assert.equal([...new Set(asked)].sort(), ['candidate:q7', 'candidate:q8', 'judge:q7', 'judge:q8'], 'only the unfinished items');
    for (const name of ['prepared.jsonl', 'filtered.jsonl', 'duplicates.jsonl', 'failures.jsonl', 'prepare.json']) {
      assert.is(fs.readFileSync(path.join(work, name), 'utf8'), fs.readFileSync(path.join(whole, name), 'utf8'), name);
    }
    // Other settings on the same folder are refused before anything is written.
    const err2 = await prepareInstructions(options(second.url, work, { minDifficulty: 6 })).catch((e: unknown) => e);
    assert.instance(err2, SettingsError);
    assert.match((err2 as Error).message, /min_difficulty: 5 then, 6 now/);
  } finally {
    await second.close();
  }
});

test('--concurrency bounds the calls in flight; items finishing out of order end up in input order', async () => {
  // q1 and q2 are slow, so they finish after items behind them.
  const delayMs = (b: ChatBody) => (['q1', 'q2'].includes(tagOf(b)) ? 120 : 20);
  const f = await startChatFixture({ reply: (b) => (kindOf(b) === 'judge' ? { content: JSON.stringify({ score: 6, reason: 'r' }), delayMs: delayMs(b) } : { content: 'an answer', delayMs: delayMs(b) }) });
  const work = newDir();
  try {
    const appended: string[] = [];
    const watcher = setInterval(() => {
      if (fs.existsSync(path.join(work, 'prepared.jsonl'))) appended.splice(0, appended.length, ...lines(path.join(work, 'prepared.jsonl')).map((p) => p.id));
    }, 5);
    await prepareInstructions(options(f.url, work, { concurrency: 3 }));
    clearInterval(watcher);
    assert.ok(f.maxInFlight <= 3 && f.maxInFlight >= 2, `max in flight ${f.maxInFlight}`);
    assert.ok(appended.indexOf('q1') > appended.indexOf('q3'), `appended as finished: ${appended.join(' ')}`);
    assert.equal(lines(path.join(work, 'prepared.jsonl')).map((p) => p.id), ['q1', 'q2', 'q3', 'q4', 'q5', 'q6', 'q7', 'q8']);
  } finally {
    await f.close();
  }
});

test('readInstructions: {id, prompt} lines or importer formats; bad lines name file, line and field', async () => {
  const file = path.join(tmp, 'in.jsonl');
  const write = (...ls: string[]) => fs.writeFileSync(file, ls.join('\n') + '\n');
  write('{"id": "a", "prompt": "Is 1 g of paracetamol too much?", "category": "medication"}', '', '{"id": "b", "prompt": [{"role": "user", "content": "Chest pain"}]}');
  const ok = await readInstructions(file);
  assert.equal(ok.map((i) => [i.id, i.prompt, i.category]), [['a', [{ role: 'user', content: 'Is 1 g of paracetamol too much?' }], 'medication'], ['b', [{ role: 'user', content: 'Chest pain' }], undefined]]);
  assert.equal(ok[1].source, { format: 'promedical', file, line: 3 });
  const cases: [string[], RegExp][] = [
    [['{"id": "a", "prompt": "x"}', '{"id": "b", "prompt": "y"'], /in\.jsonl:2: not valid JSON/],
    [['{"id": "a"}'], /in\.jsonl:1: prompt: expected a non-empty string/],
    [['{"id": "a", "prompt": [{"role": "doctor", "content": "x"}]}'], /in\.jsonl:1: prompt\[0\]\.role: expected one of/],
    [['{"id": "a", "prompt": "x"}', '{"id": "a", "prompt": "y"}'], /in\.jsonl:2: id: duplicate id "a" \(first at .*in\.jsonl:1\)/],
    [['{"prompt": "x"}'], /in\.jsonl:1: id: expected a non-empty string/],
  ];
  for (const [ls, re] of cases) {
    write(...ls);
    const err = await readInstructions(file).then(() => null, (e: unknown) => e);
    assert.instance(err, DataError);
    assert.match((err as Error).message, re);
  }
  const hb = await readInstructions(path.join(path.dirname(new URL(import.meta.url).pathname), '../fixtures/formats/healthbench.jsonl'), 'healthbench');
  assert.ok(hb.length > 0 && hb.every((i) => i.prompt.length > 0 && i.source.format === 'healthbench'));
});

test('parseEndpoints: URL=MODEL, comma-separated; a bad part is named', () => {
  assert.equal(parseEndpoints('http://127.0.0.1:8000=Qwen/Qwen3-8B, https://api.example.com/v1=gpt-4o-mini'), [
    { url: 'http://127.0.0.1:8000', model: 'Qwen/Qwen3-8B' },
    { url: 'https://api.example.com/v1', model: 'gpt-4o-mini' },
  ]);
  assert.throws(() => parseEndpoints('http://a:1=m,localhost:8000=m'), /part 2 "localhost:8000=m" is not URL=MODEL/);
  assert.throws(() => parseEndpoints('http://a:1'), /part 1 "http:\/\/a:1" is not URL=MODEL/);
  assert.throws(() => parseEndpoints(''), /got nothing/);
});

test.run();
