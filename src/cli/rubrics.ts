// promedical rubrics <stage>: the human-in-the-loop rubric pipeline (docs/rubrics.md), one stage
// per subcommand over one work folder: prepare -> draft -> review -> export.
import { UsageError } from './args.js';
import { rubricsDraft } from './rubrics_draft.js';
import { rubricsExport } from './rubrics_export.js';
import { rubricsPrepare } from './rubrics_prepare.js';
import { rubricsReview } from './rubrics_review.js';

const STAGES: Record<string, { about: string; run: (argv: string[]) => Promise<void> }> = {
  prepare: { about: 'deduplicate instructions, score their difficulty with an LLM judge, collect candidate answers', run: rubricsPrepare },
  draft: { about: 'draft a three-tier rubric per instruction with an LLM (schema-constrained, repaired once)', run: rubricsDraft },
  review: { about: 'the physicians\' review page (accept / edit / reject criteria, grade candidates) on 127.0.0.1', run: rubricsReview },
  export: { about: 'reviewed items -> schema-v1 records (train / test split by instruction) for train-rm', run: rubricsExport },
};

function usage(): string {
  return [
    'Usage: promedical rubrics <stage> [flags]     (promedical rubrics <stage> --help for its flags)',
    '',
    ...Object.entries(STAGES).map(([name, s]) => `  ${name.padEnd(9)}${s.about}`),
    '',
    'Each stage reads and writes JSON Lines in one --work folder (docs/rubrics.md).',
  ].join('\n');
}

export async function rubrics(argv: string[]): Promise<void> {
  const [stage, ...rest] = argv;
  if (stage === undefined || stage === '--help' || stage === '-h') return void console.log(usage());
  const s = STAGES[stage];
  if (!s) throw new UsageError(`unknown stage "${stage}" (one of ${Object.keys(STAGES).join(', ')})\n${usage()}`);
  await s.run(rest);
}
