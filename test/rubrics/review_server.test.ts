// The review server over loopback HTTP: decisions, grades and finished items land in the journal
// and come back folded per reviewer; bad bodies are 4xx JSON errors naming the field and write
// nothing; a failed journal write is a 500, never a silent loss; two reviewers at once keep both;
// and the CLI killed with SIGKILL after k acknowledged POSTs has all k in its journal.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { foldJournal, Journal, readJournal, type NewEntry } from '../../src/rubrics/journal.js';
import { journalFile } from '../../src/rubrics/review_work.js';
import { cli } from '../helpers/cli.js';
import { draftItem, exited, getJson, post, reviewCli, startServer, workFolder } from './review_helpers.js';

const items = [draftItem(0), draftItem(1), draftItem(2)];
const work = workFolder(items, 'review-server');
const lines = () => (fs.existsSync(journalFile(work)) ? fs.readFileSync(journalFile(work), 'utf8').split('\n').filter(Boolean).length : 0);
let server: Awaited<ReturnType<typeof startServer>>;
test.before(async () => void (server = await startServer(work, items, { roundSize: 2, maxBodyBytes: 4096 })));
test.after(async () => {
  await server.s.close();
  fs.rmSync(work, { recursive: true, force: true });
});

const api = (p: string) => `${server.url}${p}`;

test('decisions, grades and a finished item are journalled and folded per reviewer', async () => {
  const before = lines();
  const a = await post(api('/api/decisions'), { reviewer: 'dr-a', item: 'q0', criterion: 'p1', action: 'accept' });
  assert.is(a.status, 200, JSON.stringify(a.body));
  assert.is(a.body.saved.round, 0);
  const ed = await post(api('/api/decisions'), { reviewer: 'dr-a', item: 'q0', criterion: 'p2', action: 'edit', text: '  Advises chewing 300 mg aspirin  ', weight: 0.25 });
  assert.is(ed.status, 200, JSON.stringify(ed.body));
  assert.equal(ed.body.saved.edit, { text: 'Advises chewing 300 mg aspirin', tier: 'proficiency', weight: 0.25 }, 'tier defaults to the drafted one; text trimmed');
  const tierMove = await post(api('/api/decisions'), { reviewer: 'dr-a', item: 'q0', criterion: 'p3', action: 'edit', text: 'Says not to drive', tier: 'safety' });
  assert.equal(tierMove.body.saved.edit, { text: 'Says not to drive', tier: 'safety' }, 'no weight outside proficiency');
  assert.is((await post(api('/api/grades'), { reviewer: 'dr-a', item: 'q0', response: 'c1', criterion: 'p1', met: false })).status, 200);
  assert.is(lines(), before + 4);
  const onDisk = readJournal(journalFile(work)).slice(-4);
  assert.equal(onDisk.map((e) => e.type), ['decision', 'decision', 'decision', 'grade']);
  assert.is(onDisk[0].seq, a.body.saved.seq);

  const mine = await getJson(api('/api/items/q0?reviewer=dr-a'));
  assert.is(mine.status, 200);
  assert.equal(Object.keys(mine.body.state.decisions).sort(), ['p1', 'p2', 'p3']);
  assert.is(mine.body.state.decisions.p2.edit.text, 'Advises chewing 300 mg aspirin');
  assert.equal(mine.body.state.grades, { c1: { p1: false } });
  assert.is(mine.body.state.done, false);
  assert.equal(mine.body.item.candidates.map((c: { id: string }) => c.id), ['c0', 'c1']);
  assert.is(mine.body.item.pregrades, undefined, 'the page does not see the LLM pregrades');
  const theirs = await getJson(api('/api/items/q0?reviewer=dr-b'));
  assert.equal(theirs.body.state, { decisions: {}, grades: {}, done: false, seconds: 0 });

  // Finishing needs every criterion decided and every kept one graded for both candidates.
  const early = await post(api('/api/done'), { reviewer: 'dr-a', item: 'q0', seconds: 12.5 });
  assert.is(early.status, 409);
  assert.is(early.body.error.field, 'item');
  assert.match(early.body.error.message, /still needs \d+ things: a decision on s1, a grade of c0 on p1, /);
  await post(api('/api/decisions'), { reviewer: 'dr-a', item: 'q0', criterion: 's1', action: 'reject' });
  await post(api('/api/decisions'), { reviewer: 'dr-a', item: 'q0', criterion: 'x1', action: 'accept' });
  for (const cid of ['p1', 'p2', 'p3', 'x1']) for (const r of ['c0', 'c1']) await post(api('/api/grades'), { reviewer: 'dr-a', item: 'q0', response: r, criterion: cid, met: r === 'c0' });
  const ok = await post(api('/api/done'), { reviewer: 'dr-a', item: 'q0', seconds: 12.5 });
  assert.is(ok.status, 200, JSON.stringify(ok.body));
  const after = (await getJson(api('/api/items/q0?reviewer=dr-a'))).body.state;
  assert.equal([after.done, after.seconds, after.grades.c1.p1], [true, 12.5, false]);

  const rounds = (await getJson(api('/api/rounds?reviewer=dr-a'))).body;
  assert.equal(rounds, { round_size: 2, items: 3, rounds: [{ round: 0, first: 0, items: 2, done: 1 }, { round: 1, first: 2, items: 1, done: 0 }] });
  const list = (await getJson(api('/api/rounds/0/items?reviewer=dr-a'))).body;
  assert.equal(list.items.map((x: { id: string; decided: number; done: boolean }) => [x.id, x.decided, x.done]), [['q0', 5, true], ['q1', 0, false]]);
  const report = (await getJson(api('/api/rounds/0/report'))).body;
  // dr-a on q0: 2 accepted, 2 edited, 1 rejected.
  assert.equal([report.overall.decided, report.overall.accepted, report.overall.edited, report.overall.rejected], [5, 2, 2, 1]);
  assert.equal(report.items_done, { 'dr-a': 1 });
  assert.is((await getJson(api('/api/rounds/2/report'))).status, 404);
});

test('bad requests are 4xx JSON errors naming the field, write nothing, and the server stays healthy', async () => {
  const before = lines();
  const good = { reviewer: 'dr-a', item: 'q1', criterion: 'p1', action: 'accept' };
  const cases: [string, unknown, number, string | null, string][] = [
    ['/api/decisions', { ...good, action: 'approve' }, 400, 'action', 'invalid_request'],
    ['/api/decisions', { ...good, item: 'nope' }, 400, 'item', 'unknown_item'],
    ['/api/decisions', { ...good, criterion: 'p9' }, 400, 'criterion', 'unknown_criterion'],
    ['/api/decisions', { ...good, reviewer: undefined }, 400, 'reviewer', 'invalid_request'],
    ['/api/decisions', { ...good, reviewer: 'dr a<script>' }, 400, 'reviewer', 'invalid_request'],
    ['/api/decisions', { ...good, action: 'edit' }, 400, 'text', 'invalid_request'],
    ['/api/decisions', { ...good, action: 'edit', text: '   ' }, 400, 'text', 'invalid_request'],
    ['/api/decisions', { ...good, action: 'edit', text: 'x', tier: 'gold' }, 400, 'tier', 'invalid_request'],
    ['/api/decisions', { ...good, action: 'edit', text: 'x', weight: -1 }, 400, 'weight', 'invalid_request'],
    ['/api/decisions', { ...good, text: 'only for edits' }, 400, 'text', 'invalid_request'],
    ['/api/decisions', { ...good, colour: 'red' }, 400, 'colour', 'invalid_request'],
    ['/api/grades', { reviewer: 'dr-a', item: 'q1', response: 'c7', criterion: 'p1', met: true }, 400, 'response', 'unknown_response'],
    ['/api/grades', { reviewer: 'dr-a', item: 'q1', response: 'c0', criterion: 'p1', met: 'yes' }, 400, 'met', 'invalid_request'],
    ['/api/done', { reviewer: 'dr-a', item: 'q1', seconds: -3 }, 400, 'seconds', 'invalid_request'],
    ['/api/done', { reviewer: 'dr-a', item: 'zz', seconds: 3 }, 400, 'item', 'unknown_item'],
    ['/api/decisions', '{"reviewer": "dr-a",', 400, null, 'invalid_json'],
    ['/api/decisions', [good], 400, null, 'invalid_request'],
    ['/api/decisions', { ...good, reviewer: 'x'.repeat(5000) }, 413, null, 'body_too_large'],
  ];
  for (const [route, body, status, field, code] of cases) {
    const r = await post(api(route), body);
    assert.is(r.status, status, `${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(r.body)}`);
    assert.is(r.body.error.code, code, JSON.stringify(r.body));
    assert.is(r.body.error.field, field, JSON.stringify(r.body));
    assert.type(r.body.error.message, 'string');
  }
  const plain = await post(api('/api/decisions'), JSON.stringify(good), 'text/plain'); // a cross-site form could send this
  assert.is(plain.status, 415);
  assert.is((await getJson(api('/api/items/nope?reviewer=dr-a'))).status, 404);
  const noReviewer = await getJson(api('/api/items/q0'));
  assert.equal([noReviewer.status, noReviewer.body.error.field], [400, 'reviewer']);
  assert.is((await getJson(api('/api/rounds/x/items?reviewer=dr-a'))).status, 404);
  assert.is(lines(), before, 'nothing written');
  const health = await getJson(api('/health'));
  assert.equal([health.status, health.body.status, health.body.journal_entries], [200, 'ok', before]);
  assert.is((await post(api('/api/decisions'), good)).status, 200, 'still accepts good requests');
});

test('the page, its script and stylesheet come with a strict content security policy', async () => {
  for (const [p, type] of [['/', 'text/html'], ['/review.js', 'text/javascript'], ['/review.css', 'text/css']]) {
    const r = await fetch(api(p));
    assert.is(r.status, 200);
    assert.ok(r.headers.get('content-type')!.startsWith(type), p);
    assert.match(r.headers.get('content-security-policy')!, /default-src 'none'; script-src 'self'/);
  }
});

test('two reviewers deciding the same criteria at once: every decision is kept, each folded apart', async () => {
  const before = readJournal(journalFile(work)).length;
  const reqs = [];
  for (let i = 0; i < 20; i++) {
    for (const reviewer of ['dr-x', 'dr-y']) {
      const action = (reviewer === 'dr-x') === (i % 2 === 0) ? 'accept' : 'reject';
      reqs.push(post(api('/api/decisions'), { reviewer, item: 'q2', criterion: i < 10 ? 'p1' : 'p2', action }));
    }
  }
  const answers = await Promise.all(reqs);
  assert.ok(answers.every((a) => a.status === 200));
  const entries = readJournal(journalFile(work));
  assert.is(entries.length, before + 40);
  assert.equal(new Set(entries.map((e) => e.seq)).size, entries.length, 'sequence numbers unique');
  const f = foldJournal(entries);
  // The last request of each reviewer on p1 was i = 9 and on p2 i = 19 (odd: dr-x rejects, dr-y accepts).
  for (const [reviewer, action] of [['dr-x', 'reject'], ['dr-y', 'accept']]) {
    const s = f.get(reviewer)!.get('q2')!;
    assert.equal([s.decisions.get('p1')!.action, s.decisions.get('p2')!.action], [action, action], reviewer);
  }
  const x = (await getJson(api('/api/items/q2?reviewer=dr-x'))).body.state.decisions;
  assert.is(x.p1.action, 'reject');
});

test('a failed journal write is a 500 and changes nothing; the server goes on', async () => {
  const w = workFolder(items, 'review-fail');
  class FullDisk extends Journal {
    failing = true;
    override append(e: NewEntry) {
      if (this.failing) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      return super.append(e);
    }
  }
  const journal = new FullDisk(journalFile(w));
  const { s, url } = await startServer(w, items, { journal });
  try {
    const r = await post(`${url}/api/decisions`, { reviewer: 'dr-a', item: 'q0', criterion: 'p1', action: 'accept' });
    assert.is(r.status, 500);
    assert.is(r.body.error.code, 'journal_write_failed');
    assert.match(r.body.error.message, /not saved: ENOSPC/);
    assert.equal((await getJson(`${url}/api/items/q0?reviewer=dr-a`)).body.state.decisions, {}, 'not shown as decided');
    journal.failing = false;
    assert.is((await post(`${url}/api/decisions`, { reviewer: 'dr-a', item: 'q0', criterion: 'p1', action: 'accept' })).status, 200);
    assert.is(readJournal(journalFile(w)).length, 1);
  } finally {
    await s.close();
    fs.rmSync(w, { recursive: true, force: true });
  }
});

test('the CLI killed with SIGKILL after k acknowledged decisions has all k; restarted, it serves them; SIGTERM stops it cleanly', async () => {
  const dir = workFolder(items, 'review-kill');
  try {
    const first = await reviewCli(dir);
    const k = 17;
    const crit = items[1].criteria.map((c) => c.id);
    for (let i = 0; i < k; i++) {
      const body = i % 2 ? { reviewer: 'dr-k', item: 'q1', criterion: crit[i % crit.length], action: i % 3 ? 'accept' : 'reject' } : undefined;
      const r = body ? await post(`${first.url}/api/decisions`, body) : await post(`${first.url}/api/grades`, { reviewer: 'dr-k', item: 'q1', response: `c${i % 4 < 2 ? 0 : 1}`, criterion: crit[i % crit.length], met: i % 3 === 0 });
      assert.is(r.status, 200);
    }
    first.child.kill('SIGKILL');
    await exited(first.child);
    const entries = readJournal(journalFile(dir));
    assert.is(entries.length, k, 'every acknowledged entry is on disk');
    const expected = foldJournal(entries).get('dr-k')!.get('q1')!;

    const second = await reviewCli(dir);
    const state = (await getJson(`${second.url}/api/items/q1?reviewer=dr-k`)).body.state;
    assert.equal(Object.fromEntries(Object.entries(state.decisions).map(([c, d]) => [c, (d as { action: string }).action])), Object.fromEntries([...expected.decisions].map(([c, d]) => [c, d.action])));
    assert.ok(Object.keys(state.decisions).length > 0 && Object.keys(state.grades).length > 0);
    assert.is((await post(`${second.url}/api/decisions`, { reviewer: 'dr-k', item: 'q0', criterion: 's1', action: 'accept' })).body.saved.seq, k + 1);
    second.child.kill('SIGTERM');
    assert.is(await exited(second.child), 0);
    assert.equal(JSON.parse(second.out().trim().split('\n').at(-1)!), { stopped: 'SIGTERM', journal: journalFile(dir), entries_written: 1, entries: k + 1 });

    // The report as JSON without a server.
    const rep = cli(['rubrics', 'review', '--work', dir, '--round-size', '2', '--report', '0'], { cwd: dir });
    assert.is(rep.code, 0, rep.stderr);
    const report = JSON.parse(rep.stdout);
    assert.equal([report.round, report.items, report.reviewers], [0, 2, ['dr-k']]);
    assert.is(report.overall.decided, expected.decisions.size + 1);
    const bad = cli(['rubrics', 'review', '--work', dir, '--round-size', '2', '--report', '5'], { cwd: dir });
    assert.is(bad.code, 2);
    assert.match(bad.stderr, /--report 5: there are 2 rounds of 2 items \(0\.\.1\)/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
