// promedical rubrics export: reviewed items of a work folder -> OUT/train.jsonl and OUT/test.jsonl
// (schema-v1 records with grades, split by instruction), ready for train-rm; one JSON line of
// counts on stdout.
import * as path from 'node:path';
import { exportItems, writeExport } from '../rubrics/export.js';
import { foldJournal, readJournal } from '../rubrics/journal.js';
import { draftsFile, journalFile, readDrafts } from '../rubrics/review_work.js';
import type { Field } from '../train/config.js';
import { helpText, parseFlags, UsageError } from './args.js';
import { requireFile } from './inputs.js';

const FIELDS: Record<string, Field> = {
  work: { kind: 'string', nullable: true, doc: 'The work folder: reads drafts.jsonl and journal.jsonl.' },
  out: { kind: 'string', nullable: true, doc: 'Folder for train.jsonl and test.jsonl (default: WORK/export).' },
  test_fraction: { kind: 'number', min: 0, max: 1, exclusiveMax: true, doc: 'Share of instructions in test.jsonl (a seeded hash of the item id decides).' },
  seed: { kind: 'int', min: 0, doc: 'Seed of the split.' },
  include_drafts: { kind: 'boolean', doc: 'Also export items nobody finished reviewing, as drafted and graded by the LLM (source.format promedical-draft).' },
};
const DEFAULTS = { work: null as string | null, out: null as string | null, test_fraction: 0.1, seed: 0, include_drafts: false };

const ABOUT = `Turns the reviewed items of WORK into schema-v1 records for train-rm (docs/rubrics.md): the
criteria the reviewers kept (edits applied, proficiency weights renormalised), each candidate a
response graded by them. Items nobody finished stay out unless --include-drafts. Files are
written through a temporary file and a rename.`;

export async function rubricsExport(argv: string[]): Promise<void> {
  const parsed = parseFlags('rubrics export', argv, FIELDS, ['work', 'out']);
  if (parsed.help) return void console.log(helpText('promedical rubrics export [flags]', ABOUT, FIELDS, DEFAULTS));
  const a = { ...DEFAULTS, ...parsed.values } as typeof DEFAULTS;
  if (!a.work) throw new UsageError('--work is required (the folder `rubrics draft` wrote drafts.jsonl into)');
  const work = a.work;
  const items = await readDrafts(requireFile('--work', draftsFile(work)));
  const result = exportItems(items, foldJournal(readJournal(journalFile(work))), { includeDrafts: a.include_drafts, testFraction: a.test_fraction, seed: a.seed });
  const files = writeExport(a.out ?? path.join(work, 'export'), result);
  console.log(JSON.stringify({ train_file: files.train, test_file: files.test, ...result.summary }));
}
