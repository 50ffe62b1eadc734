// Export against hand-worked merges: kept / edited / rejected criteria, renormalised weights,
// reviewers' grades (never the LLM's pregrades for a reviewed item), the multi-reviewer rule
// (majority keeps, a tie drops, the latest edit wins and outranks an accept, grade ties left out),
// drafts only on request; a split by instruction id; atomic files; and the CLI's records trained
// on by a real `train-rm` run.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadRecords } from '../../src/data/records.js';
import { criterionPairs, type Criterion } from '../../src/data/schema.js';
import { exportItems, inTestSplit, renormaliseWeights, writeExport } from '../../src/rubrics/export.js';
import { foldJournal, Journal, type JournalEntry, type NewEntry } from '../../src/rubrics/journal.js';
import { journalFile } from '../../src/rubrics/review_work.js';
import { cli } from '../helpers/cli.js';
import { draftItem, tmpDir, workFolder } from './review_helpers.js';

const dirs: string[] = [];
test.after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

let seq = 0;
const e = (x: NewEntry): JournalEntry => ({ seq: ++seq, uuid: `u${seq}`, at: '2026-01-01T00:00:00.000Z', ...x }) as JournalEntry;
type Act = 'accept' | 'reject' | { text: string; tier?: Criterion['tier']; weight?: number };
const decide = (reviewer: string, item: string, acts: Record<string, Act>) =>
  Object.entries(acts).map(([criterion, a]) =>
    e(typeof a === 'string' ? { type: 'decision', reviewer, round: 0, item, criterion, action: a } : { type: 'decision', reviewer, round: 0, item, criterion, action: 'edit', edit: { tier: 'proficiency', ...a } }),
  );
const grade = (reviewer: string, item: string, response: string, mets: Record<string, boolean>) => Object.entries(mets).map(([criterion, met]) => e({ type: 'grade', reviewer, round: 0, item, response, criterion, met }));
const done = (reviewer: string, item: string) => e({ type: 'item-done', reviewer, round: 0, item, seconds: 10 });
const close = (a: number | undefined, b: number, what: string) => assert.ok(a !== undefined && Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

test('one reviewer: kept, edited and rejected criteria, weights renormalised, their grades and the pairs train-rm builds', () => {
  const item = draftItem(0); // s1; p1 0.5, p2 0.3, p3 0.2; x1
  const entries = [
    ...decide('dr-a', 'q0', { s1: 'accept', p1: { text: 'Names acute coronary syndrome', weight: 0.4 }, p2: 'reject', p3: 'accept', x1: { text: 'Orders the steps by urgency' } }),
    ...grade('dr-a', 'q0', 'c0', { s1: true, p1: true, p2: true, p3: false, x1: true }),
    ...grade('dr-a', 'q0', 'c1', { s1: false, p1: false, p3: false, x1: false }),
    done('dr-a', 'q0'),
  ];
  const { train, test: held, summary } = exportItems([item], foldJournal(entries), { testFraction: 0 });
  assert.is(held.length, 0);
  assert.is(train.length, 1);
  const r = train[0];
  assert.equal(r.criteria.map((c) => [c.id, c.tier, c.text]), [
    ['s1', 'safety', item.criteria[0].text],
    ['p1', 'proficiency', 'Names acute coronary syndrome'],
    ['p3', 'proficiency', item.criteria[3].text],
    ['x1', 'proficiency', 'Orders the steps by urgency'],
  ]);
  // Proficiency weights 0.4 (edited), 0.2, and x1 (moved to proficiency, no weight) the mean 0.3:
  // sum 0.9, so 4/9, 2/9, 3/9.
  close(r.criteria[1].weight, 0.4 / 0.9, 'p1');
  close(r.criteria[2].weight, 0.2 / 0.9, 'p3');
  close(r.criteria[3].weight, 0.3 / 0.9, 'x1');
  assert.is(r.criteria[0].weight, undefined);
  // The reviewer's grades, not the pregrades (which say c0 meets p3); none on the rejected p2.
  assert.equal(r.responses, [
    { id: 'c0', text: item.candidates[0].text, grades: { s1: true, p1: true, p3: false, x1: true } },
    { id: 'c1', text: item.candidates[1].text, grades: { s1: false, p1: false, p3: false, x1: false } },
  ]);
  assert.equal(r.source, { format: 'promedical-review', reviewers: ['dr-a'], round: 0, edited: ['p1', 'x1'], rejected: ['p2'], draft_model: 'drafter-model', candidate_models: { c0: 'model-a', c1: 'model-b' } });
  assert.equal([r.id, r.specialty, r.prompt], [item.id, 'cardiology', item.prompt]);
  // c0 beats c1 where it meets and c1 does not: s1, p1, x1 (p3: both not met).
  assert.equal(criterionPairs(r), [
    { chosen: 'c0', rejected: 'c1', criterion: 's1' },
    { chosen: 'c0', rejected: 'c1', criterion: 'p1' },
    { chosen: 'c0', rejected: 'c1', criterion: 'x1' },
  ]);
  assert.equal(summary, { items: 1, reviewed: 1, drafts: 0, not_reviewed: 0, no_criteria: 0, train: 1, test: 0, criteria: { kept: 4, edited: 2, rejected: 1 }, conflicts: { decisions: 0, grade_ties: 0 } });
});

test('several reviewers: majority keeps, a tie drops, the latest edit wins and outranks an accept, grade ties are left out, unfinished reviews do not count', () => {
  const three = draftItem(1); // q1: s1; p1 0.6, p2 0.4; x1
  const two = draftItem(2); // q2: s1; p1 0.5, p2 0.3, p3 0.2; x1
  const entries = [
    ...decide('dr-a', 'q1', { s1: 'accept', p1: 'reject', p2: { text: 'A: gives 180 mg', weight: 0.4 }, x1: 'accept' }),
    ...decide('dr-b', 'q1', { s1: 'accept', p1: 'accept', p2: { text: 'B: gives about 180 mg (15 mg/kg)', weight: 0.5 }, x1: 'reject' }),
    ...decide('dr-c', 'q1', { s1: 'reject', p1: 'reject', p2: 'accept', x1: 'accept' }),
    ...decide('dr-d', 'q1', { s1: 'reject', p1: 'accept', p2: 'reject', x1: 'reject' }), // never finished: ignored
    ...grade('dr-a', 'q1', 'c0', { s1: true, p2: true, x1: true }),
    ...grade('dr-a', 'q1', 'c1', { s1: false, p2: false, x1: false }),
    ...grade('dr-b', 'q1', 'c0', { s1: true, p2: false }),
    ...grade('dr-b', 'q1', 'c1', { s1: true, p2: false }),
    ...grade('dr-c', 'q1', 'c0', { s1: false, p2: false, x1: true }),
    ...grade('dr-c', 'q1', 'c1', { x1: true }),
    ...grade('dr-d', 'q1', 'c1', { s1: true, x1: true }),
    done('dr-a', 'q1'),
    done('dr-b', 'q1'),
    done('dr-c', 'q1'),
    // Two reviewers on q2: p1 split (dropped); p2 edited by dr-a, then accepted by dr-b.
    ...decide('dr-a', 'q2', { s1: 'accept', p1: 'reject', p2: { text: 'Aspirin 300 mg, chewed', weight: 0.3 }, p3: 'accept', x1: 'accept' }),
    ...decide('dr-b', 'q2', { s1: 'accept', p1: 'accept', p2: 'accept', p3: 'accept', x1: 'reject' }),
    done('dr-a', 'q2'),
    done('dr-b', 'q2'),
  ];
  const { train, summary } = exportItems([three, two], foldJournal(entries), { testFraction: 0 });
  const [r1, r2] = train;
  // q1 votes (a, b, c): s1 2 keep : 1 reject -> kept; p1 1 : 2 -> dropped; p2 3 : 0 -> kept with
  // dr-b's edit (the later one); x1 2 : 1 -> kept.
  assert.equal(r1.criteria.map((c) => [c.id, c.text]), [['s1', three.criteria[0].text], ['p2', 'B: gives about 180 mg (15 mg/kg)'], ['x1', three.criteria[3].text]]);
  close(r1.criteria[1].weight, 1, 'the only proficiency criterion left');
  // Grades, majority of a, b, c: c0 s1 T T F -> T, p2 T F F -> F, x1 T - T -> T; c1 s1 F T -> tie,
  // p2 F F -> F, x1 F - T -> tie (dr-d's grades do not count).
  assert.equal(r1.responses.map((x) => x.grades), [{ s1: true, p2: false, x1: true }, { p2: false }]);
  assert.equal(r1.source!.reviewers, ['dr-a', 'dr-b', 'dr-c']);
  assert.equal([r1.source!.edited, r1.source!.rejected], [['p2'], ['p1']]);
  // q2: p1 1 : 1 -> dropped; x1 1 : 1 -> dropped; p2 keeps dr-a's edit though dr-b accepted later.
  assert.equal(r2.criteria.map((c) => [c.id, c.text]), [['s1', two.criteria[0].text], ['p2', 'Aspirin 300 mg, chewed'], ['p3', two.criteria[3].text]]);
  // Weights 0.3 (edit) and 0.2: 0.6 and 0.4.
  close(r2.criteria[1].weight, 0.6, 'p2');
  close(r2.criteria[2].weight, 0.4, 'p3');
  assert.equal(r2.responses.map((x) => x.grades), [undefined, undefined], 'nobody graded q2');
  // Conflicting decisions: q1 s1, p1, x1; q2 p1, x1. Grade ties: q1 c1 s1 and c1 x1.
  assert.equal(summary.conflicts, { decisions: 5, grade_ties: 2 });
  assert.equal(summary.criteria, { kept: 6, edited: 2, rejected: 3 });
});

test('items nobody finished stay out unless includeDrafts, then as drafted with the pregrades; an item with every criterion rejected stays out', () => {
  const items = [draftItem(0), draftItem(1), draftItem(2)];
  const entries = [
    ...decide('dr-a', 'q0', Object.fromEntries(items[0].criteria.map((c) => [c.id, 'reject' as const]))),
    done('dr-a', 'q0'),
    ...decide('dr-a', 'q1', { s1: 'accept' }), // decided, not finished
  ];
  const without = exportItems(items, foldJournal(entries), { testFraction: 0 });
  assert.equal([without.train.length, without.summary.reviewed, without.summary.not_reviewed, without.summary.no_criteria, without.summary.drafts], [0, 0, 2, 1, 0]);
  const withDrafts = exportItems(items, foldJournal(entries), { testFraction: 0, includeDrafts: true });
  assert.equal(withDrafts.train.map((r) => r.id), ['q1', 'q2']);
  assert.equal(withDrafts.summary.drafts, 2);
  const d = withDrafts.train[0];
  assert.equal(d.source, { format: 'promedical-draft', draft_model: 'drafter-model', candidate_models: { c0: 'model-a', c1: 'model-b' } });
  assert.equal(d.criteria, items[1].criteria, 'as drafted (weights already sum to 1)');
  assert.equal(d.responses.map((x) => x.grades), [items[1].pregrades!.c0, items[1].pregrades!.c1]);
});

test('renormaliseWeights: sums to 1, missing weights take the mean, all-zero weights share equally', () => {
  const c = (id: string, tier: Criterion['tier'], weight?: number): Criterion => ({ id, text: id, tier, ...(weight === undefined ? {} : { weight }) });
  const w = (cs: Criterion[]) => renormaliseWeights(cs).map((x) => x.weight);
  assert.equal(w([c('a', 'proficiency', 2), c('b', 'proficiency', 6), c('s', 'safety', 5)]), [0.25, 0.75, undefined]);
  assert.equal(w([c('a', 'proficiency'), c('b', 'proficiency')]), [0.5, 0.5]);
  assert.equal(w([c('a', 'proficiency', 0), c('b', 'proficiency', 0)]), [0.5, 0.5]);
  // 0.2, a missing one (the mean of the others, 0.4) and 0.6: a total of 1.2.
  const m = w([c('a', 'proficiency', 0.2), c('b', 'proficiency'), c('d', 'proficiency', 0.6)]);
  close(m[0], 1 / 6, 'a');
  close(m[1], 1 / 3, 'b');
  close(m[2], 1 / 2, 'd');
});

test('the split is by instruction id: stable, independent of order, near the fraction, changed by the seed', () => {
  const ids = Array.from({ length: 2000 }, (_, i) => `item-${i}`);
  const inTest = ids.filter((id) => inTestSplit(id, 0.2, 0));
  // Binomial(2000, 0.2): mean 400, sd 17.9; 4 sd either side.
  assert.ok(inTest.length > 328 && inTest.length < 472, String(inTest.length));
  assert.equal([...ids].reverse().filter((id) => inTestSplit(id, 0.2, 0)).reverse(), inTest);
  const other = ids.filter((id) => inTestSplit(id, 0.2, 1));
  assert.ok(other.some((id) => !inTest.includes(id)));
  assert.ok(ids.every((id) => !inTestSplit(id, 0, 0)));
  // A larger fraction only adds instructions to the test split.
  assert.ok(inTest.every((id) => inTestSplit(id, 0.3, 0)));
});

test('writeExport replaces the files through a rename and leaves no temporary file', async () => {
  const out = tmpDir('export-write');
  dirs.push(out);
  fs.writeFileSync(path.join(out, 'train.jsonl'), 'old\n');
  const result = exportItems([draftItem(0), draftItem(1)], new Map(), { includeDrafts: true, testFraction: 0 });
  const files = writeExport(out, result);
  assert.equal(fs.readdirSync(out).sort(), ['test.jsonl', 'train.jsonl']);
  assert.equal((await loadRecords(files.train)).map((r) => r.id), ['q0', 'q1']);
  assert.is(fs.readFileSync(files.test, 'utf8'), '');
});

test('CLI: rubrics export writes what train-rm trains on; --include-drafts adds the rest', () => {
  const items = Array.from({ length: 10 }, (_, i) => draftItem(i));
  const work = workFolder(items, 'export-cli');
  dirs.push(work);
  const j = new Journal(journalFile(work));
  for (const it of items.slice(0, 8)) {
    for (const c of it.criteria) {
      j.append({ type: 'decision', reviewer: 'dr-a', round: 0, item: it.id, criterion: c.id, action: c.id === 'x1' ? 'reject' : 'accept' });
      it.candidates.forEach((cand, k) => j.append({ type: 'grade', reviewer: 'dr-a', round: 0, item: it.id, response: cand.id, criterion: c.id, met: k === 0 }));
    }
    j.append({ type: 'item-done', reviewer: 'dr-a', round: 0, item: it.id, seconds: 30 });
  }
  j.close();
  // A seed that puts some of the 8 reviewed instructions in each split.
  const reviewed = items.slice(0, 8).map((it) => it.id);
  const seed = Array.from({ length: 100 }, (_, s) => s).find((s) => [1, 2, 3].includes(reviewed.filter((id) => inTestSplit(id, 0.3, s)).length))!;
  const heldOut = reviewed.filter((id) => inTestSplit(id, 0.3, seed));

  const r = cli(['rubrics', 'export', '--work', work, '--test-fraction', '0.3', '--seed', String(seed)], { cwd: work });
  assert.is(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.equal([summary.items, summary.reviewed, summary.not_reviewed, summary.drafts, summary.train, summary.test], [10, 8, 2, 0, 8 - heldOut.length, heldOut.length]);
  assert.is(summary.train_file, path.join(work, 'export/train.jsonl'));
  assert.equal(summary.criteria.rejected, 8);

  const rm = cli(['train-rm', '--data', 'export/train.jsonl', '--eval-data', 'export/test.jsonl', '--steps', '1', '--lora-rank', '2', '--batch-size', '2', '--micro-batch-size', '2', '--max-length', '256', '--out', 'rm'], { cwd: work });
  assert.is(rm.code, 0, rm.stderr);
  const trained = JSON.parse(rm.stdout.trim().split('\n').at(-1)!);
  assert.is(trained.steps, 1);
  assert.ok(trained.heldout !== null, 'evaluated on the test split');
  assert.ok(fs.existsSync(path.join(work, 'rm/reward-model/reward_config.json')));

  const all = cli(['rubrics', 'export', '--work', work, '--out', 'all', '--include-drafts', '--test-fraction', '0'], { cwd: work });
  assert.is(all.code, 0, all.stderr);
  assert.equal(JSON.parse(all.stdout).drafts, 2);
  const lines = fs.readFileSync(path.join(work, 'all/train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.map((l) => [l.id, l.source.format]), items.map((it, i) => [it.id, i < 8 ? 'promedical-review' : 'promedical-draft']));

  const missing = cli(['rubrics', 'export'], { cwd: work });
  assert.is(missing.code, 2);
  assert.match(missing.stderr, /--work is required/);
});

test.run();
