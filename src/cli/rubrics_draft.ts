// promedical rubrics draft: each item of WORK/prepared.jsonl -> a three-tier schema-v1 rubric
// drafted by an LLM under a JSON schema, checked and repaired by one re-ask (or reported), with
// optional pre-grades of the candidates -> WORK/drafts.jsonl (docs/rubrics.md). A rerun continues.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../model/config.js';
import { draftRubrics } from '../rubrics/draft.js';
import { WORK_FILES } from '../rubrics/stage.js';
import type { Field } from '../train/config.js';
import { helpText, parseFlags } from './args.js';
import { say } from './inputs.js';
import { clientFor, interruptible, LLM_DEFAULTS, LLM_FIELDS, required, stageHelp } from './rubrics_llm.js';

const FIELDS: Record<string, Field> = {
  work: { kind: 'string', nullable: true, doc: 'The work folder `rubrics prepare` wrote.' },
  draft_url: { kind: 'string', nullable: true, doc: 'The drafting LLM: an OpenAI-compatible server (POST /v1/chat/completions).' },
  draft_model: { kind: 'string', nullable: true, doc: 'The drafting model\'s name on that server.' },
  temperature: { kind: 'number', min: 0, max: 2, doc: 'The drafter\'s sampling temperature.' },
  max_tokens: { kind: 'int', min: 16, doc: 'Most tokens of one drafted rubric.' },
  pregrade: { kind: 'boolean', doc: 'Also ask the drafter, per candidate answer, which criteria it meets (stored in pregrades).' },
  ...LLM_FIELDS,
};
const DEFAULTS = {
  work: null as string | null,
  draft_url: null as string | null,
  draft_model: null as string | null,
  temperature: 0.3,
  max_tokens: 2048,
  pregrade: false,
  ...LLM_DEFAULTS,
};

const ABOUT = `Drafts a rubric for every prepared item: proficiency criteria with weights summing to 1,
excellence bonus criteria and safety veto criteria, each phrased as what a good answer does, under
a JSON schema. A draft that does not parse or breaks a rule (a tier missing, weights not summing
to 1, repeated criteria) is asked for once more with the problems quoted, then reported in
WORK/failures.jsonl. Writes WORK/drafts.jsonl and draft.json (its settings), then prints one JSON
line of counts. After a crash or Ctrl-C (exit 130) the same command continues.`;

export async function rubricsDraft(argv: string[]): Promise<void> {
  const parsed = parseFlags('rubrics draft', argv, FIELDS, ['work']);
  if (parsed.help) {
    const help = helpText('promedical rubrics draft --work DIR --draft-url URL --draft-model NAME [--pregrade] [flags]', ABOUT, FIELDS, DEFAULTS);
    return void console.log(stageHelp(help, { '--draft-url': 'URL', '--draft-model': 'NAME', '--api-key-env': 'VAR' }, ['--work', '--draft-url', '--draft-model']));
  }
  const a = { ...DEFAULTS, ...parsed.values } as typeof DEFAULTS;
  const work = required('--work', a.work);
  if (!fs.existsSync(path.join(work, WORK_FILES.prepared))) throw new ConfigError(`--work ${work}: no ${WORK_FILES.prepared} there (run promedical rubrics prepare first)`);
  const drafter = clientFor('--draft-url', required('--draft-url', a.draft_url), required('--draft-model', a.draft_model), a);
  const log = say('rubrics draft');
  const summary = await interruptible(
    (signal) => draftRubrics({ work, drafter, temperature: a.temperature, maxTokens: a.max_tokens, pregrade: a.pregrade, concurrency: a.concurrency, signal, log }),
    log,
  );
  console.log(JSON.stringify({ ...summary, work, drafts_file: path.join(work, WORK_FILES.drafts), failures_file: path.join(work, WORK_FILES.failures) }));
}
