// The round report against hand computations: Cohen's kappa on the textbook 2x2 tables (Cohen
// 1960's formula; the tables of Wikipedia's "Cohen's kappa" article, worked again below) and a
// 3-category table, then a small two-reviewer round worked out by hand.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { foldJournal, type JournalEntry, type NewEntry } from '../../src/rubrics/journal.js';
import { raterAgreement, roundReport } from '../../src/rubrics/review_report.js';
import { draftItem } from './review_helpers.js';

/** Pairs of labels from a contingency table: rows rater A, columns rater B. */
function fromTable(labels: string[], table: number[][]): [string, string][] {
  const out: [string, string][] = [];
  table.forEach((row, i) => row.forEach((count, j) => {
    for (let k = 0; k < count; k++) out.push([labels[i], labels[j]]);
  }));
  return out;
}
const close = (a: number | null, b: number, what: string) => assert.ok(a !== null && Math.abs(a - b) < 1e-9, `${what}: ${a} vs ${b}`);

test("Cohen's kappa: the textbook 2x2 tables", () => {
  // 50 units: yes/yes 20, yes/no 5, no/yes 10, no/no 15. p_o = 35/50 = 0.7; A says yes 25/50, B
  // 30/50: p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
  const k = raterAgreement(fromTable(['yes', 'no'], [[20, 5], [10, 15]]));
  assert.is(k.n, 50);
  close(k.observed, 0.7, 'p_o');
  close(k.kappa, 0.4, 'kappa');
  // Same p_o = 0.6, different kappas. [[45, 15], [25, 15]]: p_e = 0.6*0.7 + 0.4*0.3 = 0.54,
  // kappa = 0.06 / 0.46. [[25, 35], [5, 35]]: p_e = 0.6*0.3 + 0.4*0.7 = 0.46, kappa = 0.14 / 0.54.
  close(raterAgreement(fromTable(['yes', 'no'], [[45, 15], [25, 15]])).kappa, 0.06 / 0.46, 'kappa of the first');
  close(raterAgreement(fromTable(['yes', 'no'], [[25, 35], [5, 35]])).kappa, 0.14 / 0.54, 'kappa of the second');
});

test("Cohen's kappa: three categories, and the degenerate cases", () => {
  // accept / edit / reject, 20 units: p_o = (10 + 3 + 2) / 20 = 0.75; A's marginals 12, 5, 3; B's
  // 11, 6, 3: p_e = (12*11 + 5*6 + 3*3) / 400 = 171/400; kappa = (0.75 - 0.4275) / 0.5725.
  const k = raterAgreement(fromTable(['accept', 'edit', 'reject'], [[10, 2, 0], [1, 3, 1], [0, 1, 2]]));
  close(k.kappa, 0.3225 / 0.5725, 'kappa');
  assert.equal(raterAgreement([]), { n: 0, observed: null, kappa: null });
  assert.equal(raterAgreement([['a', 'a'], ['a', 'a']]), { n: 2, observed: 1, kappa: null }, 'one label throughout: kappa undefined, as scikit-learn');
  close(raterAgreement([['a', 'b'], ['b', 'a']]).kappa, -1, 'perfect disagreement');
});

let seq = 0;
const e = (x: NewEntry): JournalEntry => ({ seq: ++seq, uuid: `u${seq}`, at: '2026-01-01T00:00:00.000Z', ...x }) as JournalEntry;
const decide = (reviewer: string, item: string, actions: Record<string, 'accept' | 'edit' | 'reject'>, round = 0) =>
  Object.entries(actions).map(([criterion, action]) => e({ type: 'decision', reviewer, round, item, criterion, action, ...(action === 'edit' ? { edit: { text: 'edited', tier: 'proficiency' as const } } : {}) }));
const grade = (reviewer: string, item: string, response: string, mets: Record<string, boolean>) =>
  Object.entries(mets).map(([criterion, met]) => e({ type: 'grade', reviewer, round: 0, item, response, criterion, met }));
const done = (reviewer: string, item: string, seconds: number, round = 0) => e({ type: 'item-done', reviewer, round, item, seconds });

test('a two-reviewer round worked out by hand', () => {
  const items = [draftItem(0), draftItem(1), draftItem(2)]; // q0: s1 p1 p2 p3 x1; q1: s1 p1 p2 x1
  const entries = [
    ...decide('dr-a', 'q0', { s1: 'accept', p1: 'accept', p2: 'edit', p3: 'reject', x1: 'accept' }),
    ...grade('dr-a', 'q0', 'c0', { s1: true, p1: true, p2: true, p3: true, x1: true }),
    ...grade('dr-a', 'q0', 'c1', { s1: false, p1: false, p2: true, p3: false, x1: false }),
    done('dr-a', 'q0', 60),
    ...decide('dr-a', 'q1', { s1: 'accept', p1: 'accept', p2: 'accept', x1: 'accept' }),
    done('dr-a', 'q1', 30),
    done('dr-a', 'q1', 10),
    ...decide('dr-b', 'q0', { s1: 'reject' }), // changed below: only the latest counts
    ...decide('dr-b', 'q0', { s1: 'accept', p1: 'reject', p2: 'edit', p3: 'reject', x1: 'accept' }),
    ...grade('dr-b', 'q0', 'c0', { s1: true, p1: true, p2: false, p3: true, x1: true }),
    ...grade('dr-b', 'q0', 'c1', { s1: false, p1: false, p2: true, p3: true, x1: false }),
    done('dr-b', 'q0', 100),
    ...decide('dr-b', 'q1', { s1: 'accept' }), // q1 not finished by dr-b: counts in rates, not in agreement
    ...decide('dr-a', 'q2', { s1: 'reject', p1: 'reject' }, 1), // round 1
    done('dr-a', 'q2', 5, 1),
  ];
  const r = roundReport(0, items.slice(0, 2), foldJournal(entries));
  assert.is(r.items, 2);
  assert.equal(r.reviewers, ['dr-a', 'dr-b']);
  assert.equal(r.items_done, { 'dr-a': 2, 'dr-b': 1 });
  // Decided: dr-a 5 + 4, dr-b 5 + 1 = 15. Accepted: 3 + 4 + 2 + 1 = 10; edited 2 (p2 twice);
  // rejected 3 (dr-a p3, dr-b p1 and p3).
  assert.equal(r.overall, { decided: 15, accepted: 10, edited: 2, rejected: 3, pass_rate: 10 / 15, edit_rate: 2 / 15, reject_rate: 3 / 15 });
  assert.equal(r.by_tier.safety, { decided: 4, accepted: 4, edited: 0, rejected: 0, pass_rate: 1, edit_rate: 0, reject_rate: 0 });
  assert.equal(r.by_tier.proficiency, { decided: 8, accepted: 3, edited: 2, rejected: 3, pass_rate: 3 / 8, edit_rate: 2 / 8, reject_rate: 3 / 8 });
  assert.equal(r.by_tier.excellence, { decided: 3, accepted: 3, edited: 0, rejected: 0, pass_rate: 1, edit_rate: 0, reject_rate: 0 });
  assert.is(r.agreement.length, 1);
  const ag = r.agreement[0];
  assert.equal(ag.reviewers, ['dr-a', 'dr-b']);
  assert.is(ag.shared_items, 1);
  // Decisions on q0: (acc,acc) (acc,rej) (edit,edit) (rej,rej) (acc,acc): p_o = 4/5; marginals A
  // 3/1/1, B 2/1/2: p_e = (6 + 1 + 2)/25 = 0.36; kappa = 0.44 / 0.64 = 0.6875.
  assert.is(ag.decisions.n, 5);
  close(ag.decisions.observed, 0.8, 'decision p_o');
  close(ag.decisions.kappa, 0.6875, 'decision kappa');
  // Grades: 10 pairs, 8 agree; A met 6/10, B met 6/10: p_e = 0.36 + 0.16 = 0.52; kappa = 0.28/0.48.
  assert.is(ag.grades.n, 10);
  close(ag.grades.observed, 0.8, 'grade p_o');
  close(ag.grades.kappa, 0.28 / 0.48, 'grade kappa');
  // Seconds per finished item: 60, 30 + 10, 100.
  assert.is(r.time_per_item.n, 3);
  close(r.time_per_item.mean_s, 200 / 3, 'mean');
  assert.is(r.time_per_item.median_s, 60);

  const r1 = roundReport(1, items.slice(2), foldJournal(entries));
  assert.equal(r1.reviewers, ['dr-a']);
  assert.equal([r1.overall.decided, r1.overall.rejected, r1.overall.pass_rate], [2, 2, 0]);
  assert.equal(r1.agreement, []);
  assert.equal(r1.time_per_item, { n: 1, mean_s: 5, median_s: 5 });
});

test('an empty round: nothing decided gives null rates, not 0', () => {
  const r = roundReport(0, [draftItem(0)], new Map());
  assert.equal(r.overall, { decided: 0, accepted: 0, edited: 0, rejected: 0, pass_rate: null, edit_rate: null, reject_rate: null });
  assert.equal(r.time_per_item, { n: 0, mean_s: null, median_s: null });
  assert.equal(r.reviewers, []);
});

test.run();
