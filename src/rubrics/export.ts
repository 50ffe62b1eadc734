// Reviewed items -> schema-v1 records for train-rm, split by instruction into train and test.
//
// The merge rule, over the reviewers who finished the item (an item-done entry), each with their
// latest decision and grades:
//   - a criterion is kept when more of them keep it (accept or edit) than reject it; a tie drops it
//     (with two physicians, one reject is enough: a disputed criterion is no training target);
//   - a kept criterion that any keeping reviewer edited takes the latest edit (journal order): its
//     text, tier and weight; an edit outranks an accept, which only endorses the draft;
//   - a candidate's grade on a kept criterion is the majority of those reviewers' grades; a tie
//     leaves it ungraded (no criterion pair for it);
//   - the kept proficiency criteria's weights are renormalised to sum to 1 (a criterion without a
//     weight first gets the mean of the others', or 1 when none has one).
// Reviewed items never take the drafting LLM's pregrades. Items nobody finished stay out, unless
// includeDrafts: then they are exported as drafted, graded by the pregrades, marked
// source.format "promedical-draft".
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { validateRecord, type Criterion, type RubricRecord } from '../data/schema.js';
import type { Folded, ItemState } from './journal.js';
import type { DraftItem } from './items.js';

export interface ExportOptions {
  /** Export items nobody finished, as drafted (default false). */
  includeDrafts?: boolean;
  /** Share of instructions in the test split (default 0.1). */
  testFraction?: number;
  /** Seed of the split's hash (default 0). */
  seed?: number;
}

export interface ExportSummary {
  items: number;
  /** Items finished by at least one reviewer and exported. */
  reviewed: number;
  /** Items nobody finished, exported as drafts (includeDrafts). */
  drafts: number;
  /** Items nobody finished, left out. */
  not_reviewed: number;
  /** Reviewed items whose every criterion was rejected, left out. */
  no_criteria: number;
  train: number;
  test: number;
  /** Over the exported reviewed items. */
  criteria: { kept: number; edited: number; rejected: number };
  /** Reviewers disagreeing on keeping a criterion, and grades left out by a tie. */
  conflicts: { decisions: number; grade_ties: number };
}

export interface ExportResult {
  train: RubricRecord[];
  test: RubricRecord[];
  summary: ExportSummary;
}

/** Whether an instruction id falls in the test split: a seeded hash, so the split is stable as
 * items are added and never depends on their order. */
export function inTestSplit(id: string, testFraction: number, seed = 0): boolean {
  const h = createHash('sha256').update(`${seed}:${id}`).digest();
  return h.readUInt32BE(0) / 2 ** 32 < testFraction;
}

/** Proficiency weights scaled to sum 1 (see the merge rule); other tiers carry none. */
export function renormaliseWeights(criteria: Criterion[]): Criterion[] {
  const prof = criteria.filter((c) => c.tier === 'proficiency');
  const given = prof.map((c) => c.weight).filter((w): w is number => w !== undefined);
  const fill = given.length > 0 ? given.reduce((a, b) => a + b, 0) / given.length : 1;
  const total = prof.reduce((s, c) => s + (c.weight ?? fill), 0);
  return criteria.map((c) => {
    const { weight, ...rest } = c;
    if (c.tier !== 'proficiency') return rest;
    return { ...rest, weight: total > 0 ? (weight ?? fill) / total : 1 / prof.length };
  });
}

/** The majority of boolean votes, or undefined on a tie (or no vote). */
function majority(votes: boolean[]): boolean | undefined {
  const yes = votes.filter(Boolean).length;
  const no = votes.length - yes;
  return yes > no ? true : no > yes ? false : undefined;
}

interface Merged {
  record: RubricRecord;
  kept: number;
  edited: number;
  rejected: number;
  conflicts: number;
  gradeTies: number;
}

/** One item's record from its finishing reviewers' states (the merge rule above). */
export function mergeReviews(item: DraftItem, reviews: [string, ItemState][]): Merged {
  const criteria: Criterion[] = [];
  const edited: string[] = [];
  const rejected: string[] = [];
  let conflicts = 0;
  for (const c of item.criteria) {
    const ds = reviews.map(([, s]) => s.decisions.get(c.id)).filter((d) => d !== undefined);
    const keeps = ds.filter((d) => d.action !== 'reject');
    if (keeps.length > 0 && keeps.length < ds.length) conflicts++;
    if (keeps.length * 2 <= ds.length) {
      rejected.push(c.id);
      continue;
    }
    const edit = keeps.filter((d) => d.edit).sort((x, y) => y.seq - x.seq)[0]?.edit;
    if (edit) edited.push(c.id);
    criteria.push(edit ? { ...c, text: edit.text, tier: edit.tier, ...(edit.weight === undefined ? {} : { weight: edit.weight }) } : { ...c });
  }
  let gradeTies = 0;
  const responses = item.candidates.map((cand) => {
    const grades: Record<string, boolean> = {};
    for (const c of criteria) {
      const votes = reviews.map(([, s]) => s.grades.get(cand.id)?.get(c.id)?.met).filter((g) => g !== undefined);
      const g = majority(votes);
      if (g === undefined && votes.length > 0) gradeTies++;
      if (g !== undefined) grades[c.id] = g;
    }
    return { id: cand.id, text: cand.text, ...(Object.keys(grades).length > 0 ? { grades } : {}) };
  });
  const done = reviews.flatMap(([, s]) => s.done).sort((x, y) => y.seq - x.seq);
  const record: RubricRecord = {
    ...head(item),
    criteria: renormaliseWeights(criteria),
    responses,
    source: { format: 'promedical-review', reviewers: reviews.map(([r]) => r), round: done[0]?.round ?? null, edited, rejected, ...provenance(item) },
  };
  return { record, kept: criteria.length, edited: edited.length, rejected: rejected.length, conflicts, gradeTies };
}

/** An item nobody finished, as drafted and graded by the drafting LLM. */
export function draftRecord(item: DraftItem): RubricRecord {
  return {
    ...head(item),
    criteria: renormaliseWeights(item.criteria),
    responses: item.candidates.map((c) => {
      const g = item.pregrades?.[c.id];
      return { id: c.id, text: c.text, ...(g && Object.keys(g).length > 0 ? { grades: { ...g } } : {}) };
    }),
    source: { format: 'promedical-draft', ...provenance(item) },
  };
}

function head(item: DraftItem): Pick<RubricRecord, 'id' | 'prompt' | 'category' | 'specialty'> {
  return { id: item.id, prompt: item.prompt, ...(item.category ? { category: item.category } : {}), ...(item.specialty ? { specialty: item.specialty } : {}) };
}

function provenance(item: DraftItem): Record<string, unknown> {
  return { draft_model: item.draft.model, candidate_models: Object.fromEntries(item.candidates.map((c) => [c.id, c.model])), ...(item.source ? { item_source: item.source } : {}) };
}

/** Every item's record (as the merge rule and options say), split into train and test. */
export function exportItems(items: readonly DraftItem[], folded: Folded, opts: ExportOptions = {}): ExportResult {
  const testFraction = opts.testFraction ?? 0.1;
  const out: ExportResult = {
    train: [],
    test: [],
    summary: { items: items.length, reviewed: 0, drafts: 0, not_reviewed: 0, no_criteria: 0, train: 0, test: 0, criteria: { kept: 0, edited: 0, rejected: 0 }, conflicts: { decisions: 0, grade_ties: 0 } },
  };
  const s = out.summary;
  for (const item of items) {
    const reviews: [string, ItemState][] = [];
    for (const [reviewer, byItem] of [...folded].sort(([a], [b]) => a.localeCompare(b))) {
      const st = byItem.get(item.id);
      if (st && st.done.length > 0) reviews.push([reviewer, st]);
    }
    let record: RubricRecord;
    if (reviews.length > 0) {
      const m = mergeReviews(item, reviews);
      if (m.kept === 0) {
        s.no_criteria++;
        continue;
      }
      s.reviewed++;
      s.criteria.kept += m.kept;
      s.criteria.edited += m.edited;
      s.criteria.rejected += m.rejected;
      s.conflicts.decisions += m.conflicts;
      s.conflicts.grade_ties += m.gradeTies;
      record = m.record;
    } else if (opts.includeDrafts) {
      s.drafts++;
      record = draftRecord(item);
    } else {
      s.not_reviewed++;
      continue;
    }
    validateRecord(record, item.id); // a record train-rm would refuse is a bug here, not later
    (inTestSplit(item.id, testFraction, opts.seed ?? 0) ? out.test : out.train).push(record);
  }
  s.train = out.train.length;
  s.test = out.test.length;
  return out;
}

/** Writes OUT/train.jsonl and OUT/test.jsonl, each through a temporary file and a rename, so a
 * reader never sees half a file. */
export function writeExport(outDir: string, result: ExportResult): { train: string; test: string } {
  fs.mkdirSync(outDir, { recursive: true });
  const files = { train: path.join(outDir, 'train.jsonl'), test: path.join(outDir, 'test.jsonl') };
  for (const split of ['train', 'test'] as const) {
    const tmp = `${files[split]}.tmp-${process.pid}`;
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, result[split].map((r) => JSON.stringify(r) + '\n').join(''));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, files[split]);
  }
  return files;
}
