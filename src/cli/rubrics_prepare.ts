// promedical rubrics prepare: instructions -> near-duplicates dropped -> difficulty judged by an
// LLM, kept in a range -> candidate answers from one or more endpoints -> WORK/prepared.jsonl
// (docs/rubrics.md). Everything is checked before anything is written; a rerun continues.
import * as path from 'node:path';
import { FORMATS, type RecordFormat } from '../data/importers.js';
import { DEFAULT_THRESHOLD } from '../rubrics/dedup.js';
import { parseEndpoints, prepareInstructions, readInstructions } from '../rubrics/prepare.js';
import { WORK_FILES } from '../rubrics/stage.js';
import type { Field } from '../train/config.js';
import { helpText, parseFlags, UsageError } from './args.js';
import { requireFile, say } from './inputs.js';
import { clientFor, interruptible, LLM_DEFAULTS, LLM_FIELDS, required, stageHelp } from './rubrics_llm.js';

const FIELDS: Record<string, Field> = {
  input: { kind: 'string', nullable: true, doc: 'Instructions: JSON Lines of {id, prompt} (prompt: a string or chat messages), or a file or folder of --format.' },
  format: { kind: 'enum', values: FORMATS, doc: 'Format of --input (promedical takes any {id, prompt} line; the rest go through their importers).' },
  work: { kind: 'string', nullable: true, doc: 'The work folder every rubrics stage reads and writes.' },
  judge_url: { kind: 'string', nullable: true, doc: 'The difficulty judge: an OpenAI-compatible server (POST /v1/chat/completions).' },
  judge_model: { kind: 'string', nullable: true, doc: 'The judge\'s model name on that server.' },
  min_difficulty: { kind: 'int', min: 0, max: 10, doc: 'Lowest difficulty score kept (0-10, kept inclusive).' },
  max_difficulty: { kind: 'int', min: 0, max: 10, doc: 'Highest difficulty score kept.' },
  candidates: { kind: 'string', nullable: true, doc: 'Candidate endpoints, URL=MODEL separated by commas; each answers every kept instruction.' },
  num_candidates: { kind: 'int', min: 1, max: 64, doc: 'Answers per instruction from each candidate endpoint.' },
  temperature: { kind: 'number', min: 0, max: 2, doc: 'Candidates\' sampling temperature.' },
  max_tokens: { kind: 'int', min: 1, doc: 'Most tokens of one candidate answer.' },
  dedup_threshold: { kind: 'number', min: 0, max: 1, exclusiveMin: true, doc: 'Jaccard similarity (word 3-gram shingles of the normalised text) at which a later instruction is a near-duplicate.' },
  seed: { kind: 'int', min: 0, doc: 'Seeds the dedup hashes and the candidates\' sampling seeds.' },
  ...LLM_FIELDS,
};
const DEFAULTS = {
  input: null as string | null,
  format: 'promedical',
  work: null as string | null,
  judge_url: null as string | null,
  judge_model: null as string | null,
  min_difficulty: 5,
  max_difficulty: 9,
  candidates: null as string | null,
  num_candidates: 1,
  temperature: 0.7,
  max_tokens: 1024,
  dedup_threshold: DEFAULT_THRESHOLD,
  seed: 0,
  ...LLM_DEFAULTS,
};

const ARGS = { '--judge-url': 'URL', '--judge-model': 'NAME', '--candidates': 'URL=MODEL,...', '--api-key-env': 'VAR' };

const ABOUT = `Prepares instructions for rubric drafting: drops near-duplicates (MinHash over word shingles,
confirmed by exact Jaccard), scores each instruction's difficulty 0-10 with an LLM judge and keeps
--min-difficulty..--max-difficulty, then collects --num-candidates answers from each --candidates
endpoint. Writes WORK/prepared.jsonl, duplicates.jsonl, filtered.jsonl, failures.jsonl and
prepare.json (its settings), then prints one JSON line of counts. Each finished item is written at
once: after a crash or Ctrl-C (exit 130) the same command continues where it stopped.`;

export async function rubricsPrepare(argv: string[]): Promise<void> {
  const parsed = parseFlags('rubrics prepare', argv, FIELDS, ['input', 'work']);
  if (parsed.help) {
    const help = helpText('promedical rubrics prepare --input FILE --work DIR --judge-url URL --judge-model NAME --candidates URL=MODEL[,...] [flags]', ABOUT, FIELDS, DEFAULTS);
    return void console.log(stageHelp(help, ARGS, ['--input', '--work', '--judge-url', '--judge-model', '--candidates']));
  }
  const a = { ...DEFAULTS, ...parsed.values } as typeof DEFAULTS;
  const input = requireFile('--input', required('--input', a.input));
  const work = required('--work', a.work);
  if (a.min_difficulty > a.max_difficulty) throw new UsageError(`--min-difficulty ${a.min_difficulty} is above --max-difficulty ${a.max_difficulty}`);
  const judge = clientFor('--judge-url', required('--judge-url', a.judge_url), required('--judge-model', a.judge_model), a);
  let endpoints;
  try {
    endpoints = parseEndpoints(required('--candidates', a.candidates));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`--candidates: ${(err as Error).message}`);
  }
  const candidates = endpoints.map((e) => clientFor('--candidates', e.url, e.model, a));
  const instructions = await readInstructions(input, a.format as RecordFormat);
  const log = say('rubrics prepare');
  const summary = await interruptible(
    (signal) =>
      prepareInstructions({
        work, instructions, judge, candidates,
        numCandidates: a.num_candidates, minDifficulty: a.min_difficulty, maxDifficulty: a.max_difficulty,
        temperature: a.temperature, maxTokens: a.max_tokens, dedupThreshold: a.dedup_threshold, seed: a.seed,
        concurrency: a.concurrency, inputSettings: { input, format: a.format }, signal, log,
      }),
    log,
  );
  console.log(JSON.stringify({ ...summary, work, prepared_file: path.join(work, WORK_FILES.prepared), failures_file: path.join(work, WORK_FILES.failures) }));
}
