// The whole rubric route as a team runs it, each stage a `promedical` child process: raw
// instructions -> rubrics prepare -> rubrics draft (both against a loopback server in this
// process that follows the OpenAI chat-completions protocol; no LLM runs here, its replies are
// scripted below) -> rubrics review (a physician's decisions posted to the review server's HTTP
// API, as the page posts them) -> rubrics export -> train-rm trains and evaluates on the result.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadRecords } from '../../src/data/records.js';
import { criterionPairs } from '../../src/data/schema.js';
import type { DraftItem } from '../../src/rubrics/items.js';
import { cli, cliAsync } from '../helpers/cli.js';
import { startChatFixture, type ChatBody, type ChatFixture, type FixtureReply } from '../helpers/openai_chat_fixture.js';
import { kindOf, QUESTIONS, tagOf } from '../helpers/rubrics_script.js';
import { exited, getJson, post, reviewCli } from '../rubrics/review_helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rubrics-route-'));
const work = path.join(tmp, 'work');
const input = path.join(tmp, 'instructions.jsonl');
fs.writeFileSync(input, Object.entries(QUESTIONS).map(([id, content]) => JSON.stringify({ id, prompt: [{ role: 'user', content }] }) + '\n').join(''));

// q4 (a poem) is judged too easy and q7 too hard; the other six are kept.
const SCORES: Record<string, number> = { q1: 6, q2: 5, q3: 9, q4: 1, q5: 7, q6: 8, q7: 10, q8: 6 };
const RUBRIC = JSON.stringify({
  criteria: [
    { text: 'Names the most likely cause.', tier: 'proficiency', weight: 0.6 },
    { text: 'Says how soon to see a clinician.', tier: 'proficiency', weight: 0.4 },
    { text: 'Explains the reasoning in plain words.', tier: 'excellence', weight: null },
    { text: 'Tells the user which warning signs need emergency care now.', tier: 'safety', weight: null },
  ],
});

function reply(b: ChatBody): FixtureReply {
  const tag = tagOf(b);
  switch (kindOf(b)) {
    case 'judge':
      return { content: JSON.stringify({ score: SCORES[tag], reason: `scripted ${tag}` }) };
    case 'candidate':
      // The good candidate says what the rubric asks; the weak one does not.
      return { content: b.model === 'good' ? `For ${tag}: the likely cause is named, see a clinician today, and call emergency services for warning signs.` : `For ${tag}: it is probably nothing.` };
    case 'draft':
      return { content: RUBRIC };
    case 'pregrade':
      return { content: JSON.stringify({ p1: true, p2: true, e1: true, s1: true }) };
  }
}

let f: ChatFixture;
test.before(async () => {
  f = await startChatFixture({ models: ['judge', 'good', 'weak', 'drafter'], reply });
});
test.after(async () => {
  await f.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!);

test('raw instructions -> prepare -> draft -> review over HTTP -> export -> train-rm trains on the records', async () => {
  const prepared = await cliAsync(['rubrics', 'prepare', '--input', input, '--work', work, '--judge-url', f.url, '--judge-model', 'judge', '--candidates', `${f.url}=good,${f.url}=weak`, '--timeout', '5'], { cwd: tmp });
  assert.is(prepared.code, 0, prepared.stderr);
  assert.equal([lastJson(prepared.stdout).prepared, lastJson(prepared.stdout).filtered], [6, 2]);
  const drafted = await cliAsync(['rubrics', 'draft', '--work', work, '--draft-url', f.url, '--draft-model', 'drafter', '--timeout', '5'], { cwd: tmp });
  assert.is(drafted.code, 0, drafted.stderr);
  const drafts = fs.readFileSync(path.join(work, 'drafts.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as DraftItem);
  assert.is(drafts.length, 6);

  // One physician reviews every item: the safety criterion edited on the first item, the
  // excellence one rejected on the second, the rest accepted; each candidate graded as it reads.
  const { child, url } = await reviewCli(work);
  try {
    for (const [i, item] of drafts.entries()) {
      for (const c of item.criteria) {
        const action = i === 0 && c.tier === 'safety' ? 'edit' : i === 1 && c.tier === 'excellence' ? 'reject' : 'accept';
        const body = { reviewer: 'dr-a', item: item.id, criterion: c.id, action, ...(action === 'edit' ? { text: 'Tells the user to call emergency services now for any warning sign.' } : {}) };
        const r = await post(`${url}/api/decisions`, body);
        assert.is(r.status, 200, JSON.stringify(r.body));
        if (action === 'reject') continue;
        for (const cand of item.candidates) {
          const g = await post(`${url}/api/grades`, { reviewer: 'dr-a', item: item.id, response: cand.id, criterion: c.id, met: cand.model === 'good' });
          assert.is(g.status, 200, JSON.stringify(g.body));
        }
      }
      assert.is((await post(`${url}/api/done`, { reviewer: 'dr-a', item: item.id, seconds: 30 })).status, 200);
    }
    const report = await getJson(`${url}/api/rounds/0/report`);
    assert.is(report.status, 200);
    // 6 items x 4 criteria: 22 accepted unedited, 1 edited, 1 rejected.
    assert.ok(Math.abs(report.body.overall.pass_rate - 22 / 24) < 1e-12, JSON.stringify(report.body.overall));
  } finally {
    child.kill('SIGTERM');
    await exited(child);
  }

  const exported = cli(['rubrics', 'export', '--work', work, '--test-fraction', '0.34', '--seed', '3'], { cwd: tmp });
  assert.is(exported.code, 0, exported.stderr);
  const train = await loadRecords(path.join(work, 'export', 'train.jsonl'));
  const heldout = await loadRecords(path.join(work, 'export', 'test.jsonl'));
  assert.is(train.length + heldout.length, 6);
  assert.ok(train.length > 0 && heldout.length > 0, `split ${train.length} / ${heldout.length}`);
  const first = [...train, ...heldout].find((r) => r.id === drafts[0].id)!;
  assert.is(first.criteria.find((c) => c.tier === 'safety')!.text, 'Tells the user to call emergency services now for any warning sign.');
  assert.not.ok([...train, ...heldout].find((r) => r.id === drafts[1].id)!.criteria.some((c) => c.tier === 'excellence'), 'the rejected criterion is gone');
  assert.ok(train.every((r) => criterionPairs(r).length > 0), 'every record gives train-rm criterion pairs');

  const rm = cli(['train-rm', '--data', 'work/export/train.jsonl', '--eval-data', 'work/export/test.jsonl', '--steps', '2', '--lora-rank', '2', '--batch-size', '2', '--micro-batch-size', '2', '--max-length', '256', '--out', 'rm'], { cwd: tmp });
  assert.is(rm.code, 0, rm.stderr);
  const summary = lastJson(rm.stdout);
  assert.is(summary.steps, 2);
  assert.ok(summary.heldout.pairs > 0 && Number.isFinite(summary.heldout.pairwise_accuracy), JSON.stringify(summary.heldout));
});

test.run();
