// rubrics draft: the rules a drafted rubric must meet (cases worked out by hand), and the stage
// in-process against a loopback server that follows the OpenAI chat-completions protocol
// (test/helpers/openai_chat_fixture.ts). No LLM runs here: every draft, broken reply, 500 and
// hang is written by this test.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { validateRecord } from '../../src/data/schema.js';
import { createChatClient } from '../../src/rubrics/chat_client.js';
import { checkDraft, draftRubrics } from '../../src/rubrics/draft.js';
import type { DraftItem, PreparedItem } from '../../src/rubrics/items.js';
import { DRAFT_SYSTEM, JUDGE_SYSTEM, MAX_CRITERION_CHARS, PREGRADE_SYSTEM, repairMessage } from '../../src/rubrics/prompts.js';
import { StageInterrupted } from '../../src/rubrics/stage.js';
import { startChatFixture, type ChatBody, type FixtureReply } from '../helpers/openai_chat_fixture.js';
import { kindOf, QUESTIONS, tagOf } from '../helpers/rubrics_script.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rubrics-draft-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;

const c = (text: string, tier: string, weight: number | null = null) => ({ text, tier, weight });
const GOOD = {
  criteria: [
    c('Says to stop lisinopril now and not restart it.', 'proficiency', 0.6),
    c('Explains that lip swelling on an ACE inhibitor can be angioedema.', 'proficiency', 0.4),
    c('Mentions that other ACE inhibitors should be avoided later too.', 'excellence'),
    c('Tells the user to call emergency services at once if the tongue or throat swells or breathing gets hard.', 'safety'),
  ],
};

test('checkDraft: a valid draft gets ids p1.., e1.., s1.., grouped by tier, weights kept', () => {
  const shuffled = { criteria: [GOOD.criteria[3], GOOD.criteria[0], GOOD.criteria[2], GOOD.criteria[1]] };
  const r = checkDraft(shuffled);
  assert.equal(r.problems, []);
  assert.equal(r.value!.map((x) => [x.id, x.tier, x.weight]), [['p1', 'proficiency', 0.6], ['p2', 'proficiency', 0.4], ['e1', 'excellence', undefined], ['s1', 'safety', undefined]]);
  assert.is(r.value![0].text, GOOD.criteria[0].text);
  // 0.3333 x 3 = 0.9999: within 1e-3 of 1.
  assert.equal(checkDraft({ criteria: [c('A a.', 'proficiency', 0.3333), c('B b.', 'proficiency', 0.3333), c('C c.', 'proficiency', 0.3333), c('D d.', 'excellence'), c('E e.', 'safety')] }).problems, []);
});

test('checkDraft: every broken rule is named', () => {
  const problems = (v: unknown) => checkDraft(v).problems;
  assert.equal(problems('not an object'), ['expected a JSON object {"criteria": [...]}']);
  assert.equal(problems({ criteria: [c('A a.', 'proficiency', 0.5), c('B b.', 'proficiency', 0.4), c('C c.', 'excellence'), c('D d.', 'safety')] }), ['the proficiency weights (0.5 + 0.4) sum to 0.9, not 1']);
  assert.equal(problems({ criteria: [c('A a.', 'proficiency', 1), c('C c.', 'excellence')] }), ['no safety criterion: write at least one']);
  assert.equal(problems({ criteria: [c('Calls 911.', 'proficiency', 1), c('C c.', 'excellence'), c('calls  911', 'safety')] }), ['criteria[2] repeats criteria[0] ("calls  911")']);
  assert.equal(problems({ criteria: [c(' ', 'proficiency', 1), c('C c.', 'excellence'), c('D d.', 'safety')] }), ['criteria[0].text is empty or missing']);
  assert.equal(problems({ criteria: [c('x'.repeat(MAX_CRITERION_CHARS + 1), 'proficiency', 1), c('C c.', 'excellence'), c('D d.', 'safety')] }), [`criteria[0].text has ${MAX_CRITERION_CHARS + 1} characters; at most ${MAX_CRITERION_CHARS}`]);
  assert.equal(problems({ criteria: [c('A a.', 'proficiency', null), c('C c.', 'bonus'), c('D d.', 'safety')] }), [
    'criteria[0] (proficiency) needs a weight > 0, got null',
    'criteria[1].tier must be proficiency, excellence or safety, got "bonus"',
    'no excellence criterion: write at least one',
    'the proficiency weights (0) sum to 0, not 1',
  ]);
});

function preparedItem(id: string): PreparedItem {
  return {
    id,
    prompt: [{ role: 'user', content: QUESTIONS[id] }],
    difficulty: { score: 7, reason: 'r', model: 'judge' },
    candidates: [{ id: 'c0', model: 'alpha', text: `alpha on ${id}` }, { id: 'c1', model: 'beta', text: `beta on ${id}` }],
    source: { format: 'promedical' },
  };
}

function workWith(ids: string[]): string {
  const work = path.join(tmp, `w${++dirs}`);
  fs.mkdirSync(work);
  fs.writeFileSync(path.join(work, 'prepared.jsonl'), ids.map((id) => JSON.stringify(preparedItem(id)) + '\n').join(''));
  return work;
}

const lines = (file: string) => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const client = (url: string) => createChatClient({ url, model: 'drafter', timeoutMs: 300, retries: 2, retryDelayMs: 1 });

/** Draft replies per tag and ask number; pregrades: c0 meets everything, c1 only the safety criteria. */
function script(drafts: Record<string, (n: number) => FixtureReply>) {
  const asked = new Map<string, number>();
  return (b: ChatBody): FixtureReply => {
    const tag = tagOf(b);
    if (kindOf(b) === 'pregrade') {
      const ids = Object.keys(b.response_format!.json_schema!.schema.properties as object);
      const good = b.messages[1].content.includes('alpha on');
      return { content: JSON.stringify(Object.fromEntries(ids.map((id) => [id, good || id.startsWith('s')]))) };
    }
    const n = asked.get(tag) ?? 0;
    asked.set(tag, n + 1);
    return (drafts[tag] ?? (() => ({ content: JSON.stringify(GOOD) })))(n);
  };
}

test('end to end: repaired by one re-ask (broken JSON, bad weights, missing tier), a 500 and a timeout retried, twice broken reported', async () => {
  const weights = { criteria: [c('A a.', 'proficiency', 0.6), c('B b.', 'proficiency', 0.6), c('C c.', 'excellence'), c('D d.', 'safety')] };
  const f = await startChatFixture({
    reply: script({
      q2: (n) => (n === 0 ? { content: '{"criteria": [{"text": "Says' } : { content: JSON.stringify(GOOD) }),
      q3: (n) => (n === 0 ? { content: JSON.stringify(weights) } : { content: JSON.stringify(GOOD) }),
      q4: (n) => (n === 0 ? { content: JSON.stringify({ criteria: GOOD.criteria.slice(0, 3) }) } : { content: JSON.stringify(GOOD) }),
      q5: () => ({ content: JSON.stringify(weights) }),
      q6: (n) => (n === 0 ? { status: 500 } : n === 1 ? { hang: true } : { content: JSON.stringify(GOOD) }),
    }),
  });
  const work = workWith(['q1', 'q2', 'q3', 'q4', 'q5', 'q6']);
  try {
    const summary = await draftRubrics({ work, drafter: client(f.url), pregrade: true, concurrency: 2 });
    assert.equal(summary, { prepared: 6, drafted: 5, repaired: 3, failed: 1, resumed: 0 });
    const drafts = lines(path.join(work, 'drafts.jsonl')) as DraftItem[];
    assert.equal(drafts.map((d) => [d.id, d.draft.repaired]), [['q1', false], ['q2', true], ['q3', true], ['q4', true], ['q6', false]]);
    const failures = lines(path.join(work, 'failures.jsonl'));
    assert.equal(failures.map((x) => [x.id, x.stage, x.attempts]), [['q5', 'draft', 2]]);
    assert.match(failures[0].error, /^draft \(drafter at http:\/\/127\.0\.0\.1:\d+\): .*sum to 1\.2, not 1/);
    // The repair re-ask quotes the problem and the bad reply.
    const q3 = f.requests.filter((b) => kindOf(b) === 'draft' && tagOf(b) === 'q3');
    assert.is(q3.length, 2);
    assert.match(q3[1].messages.at(-1)!.content, /the proficiency weights \(0\.6 \+ 0\.6\) sum to 1\.2, not 1/);
    assert.is(q3[1].messages.at(-2)!.content, JSON.stringify(weights));
    assert.match(f.requests.filter((b) => kindOf(b) === 'draft' && tagOf(b) === 'q4')[1].messages.at(-1)!.content, /no safety criterion/);
    const d = drafts[0];
    assert.equal(d.criteria.map((x) => x.id), ['p1', 'p2', 'e1', 's1']);
    assert.equal(d.pregrades, { c0: { p1: true, p2: true, e1: true, s1: true }, c1: { p1: false, p2: false, e1: false, s1: true } });
    assert.equal([d.candidates, d.difficulty, d.prompt], [preparedItem('q1').candidates, preparedItem('q1').difficulty, preparedItem('q1').prompt]);
    // Every draft is a valid schema-v1 record once its candidates are the responses.
    for (const x of drafts) {
      const record = { id: x.id, prompt: x.prompt, criteria: x.criteria, responses: x.candidates.map((r) => ({ id: r.id, text: r.text, grades: x.pregrades![r.id] })), source: x.source };
      validateRecord(record, 'drafts.jsonl', 0);
      const weightSum = x.criteria.filter((k) => k.tier === 'proficiency').reduce((a, k) => a + k.weight!, 0);
      assert.ok(Math.abs(weightSum - 1) < 1e-9);
    }
    const sent = f.requests.find((b) => kindOf(b) === 'draft')!;
    assert.equal(sent.response_format?.json_schema?.name, 'rubric');
    assert.match(sent.messages[1].content, /Example answer 1:\nalpha on q/);
  } finally {
    await f.close();
  }
});

test('a failed pregrade reports the item; Ctrl-C then a rerun drafts only the rest, with the same file as one run', async () => {
  const whole = workWith(['q1', 'q2', 'q3', 'q4']);
  const f = await startChatFixture({ reply: script({}) });
  await draftRubrics({ work: whole, drafter: client(f.url) });
  await f.close();

  const work = workWith(['q1', 'q2', 'q3', 'q4']);
  const ac = new AbortController();
  const first = await startChatFixture({
    reply: (b) => {
      if (tagOf(b) === 'q3') {
        ac.abort();
        return { hang: true };
      }
      return script({})(b);
    },
  });
  const err = await draftRubrics({ work, drafter: client(first.url), concurrency: 1, signal: ac.signal }).catch((e: unknown) => e);
  await first.close();
  assert.instance(err, StageInterrupted);
  assert.equal((lines(path.join(work, 'drafts.jsonl')) as DraftItem[]).map((d) => d.id), ['q1', 'q2']);
  const second = await startChatFixture({ reply: script({}) });
  try {
    await draftRubrics({ work, drafter: client(second.url), concurrency: 1 });
    assert.equal([...new Set(second.requests.map(tagOf))], ['q3', 'q4']);
    assert.is(fs.readFileSync(path.join(work, 'drafts.jsonl'), 'utf8'), fs.readFileSync(path.join(whole, 'drafts.jsonl'), 'utf8'));
  } finally {
    await second.close();
  }

  const g = await startChatFixture({ reply: (b) => (kindOf(b) === 'pregrade' && b.messages[1].content.includes('beta on q2') ? { content: '{"p1": "yes"}' } : script({})(b)) });
  const pg = path.join(tmp, `w${++dirs}`);
  fs.mkdirSync(pg);
  fs.copyFileSync(path.join(work, 'prepared.jsonl'), path.join(pg, 'prepared.jsonl'));
  try {
    const s = await draftRubrics({ work: pg, drafter: client(g.url), pregrade: true });
    assert.equal([s.drafted, s.failed], [3, 1]);
    const [failure] = lines(path.join(pg, 'failures.jsonl'));
    assert.equal([failure.id, failure.stage], ['q2', 'draft']);
    assert.match(failure.error, /^pregrade of c1 .*"p1" must be true or false, got "yes"/);
  } finally {
    await g.close();
  }
});

test('no prepared items is a clear error naming the file', async () => {
  const work = path.join(tmp, `w${++dirs}`);
  fs.mkdirSync(work);
  const err = await draftRubrics({ work, drafter: client('http://127.0.0.1:9') }).catch((e: unknown) => e);
  assert.match((err as Error).message, /prepared\.jsonl:0: no prepared items/);
});

test('docs/rubrics.md quotes the prompts as src/rubrics/prompts.ts has them', () => {
  const doc = fs.readFileSync(new URL('../../docs/rubrics.md', import.meta.url), 'utf8');
  const [head, tail] = repairMessage(['X']).split('\n- X\n');
  for (const prompt of [JUDGE_SYSTEM, DRAFT_SYSTEM, PREGRADE_SYSTEM, head, tail]) assert.ok(doc.includes(`${prompt}\n`), prompt.slice(0, 60));
});

test.run();
