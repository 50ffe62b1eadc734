// Stage 1 of the rubric pipeline (docs/rubrics.md): instructions -> near-duplicates dropped ->
// difficulty scored by an LLM judge, kept in [min, max] -> N candidate answers from each candidate
// endpoint -> WORK/prepared.jsonl. Every finished item is appended at once (kept, filtered or
// failed), so a rerun after a crash or Ctrl-C does only the rest.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ChatMessage } from '../data/chat.js';
import type { RecordFormat } from '../data/importers.js';
import { jsonLines } from '../data/lines.js';
import { loadRecords } from '../data/records.js';
import { DataError } from '../data/schema.js';
import { Aborted, askJson, ChatError, ReplyError, type ChatClient } from './chat_client.js';
import { dedupe, DEFAULT_THRESHOLD, type Duplicate } from './dedup.js';
import type { Candidate, PreparedItem } from './items.js';
import { candidateMessages, JUDGE_SCHEMA, judgeMessages, repairMessage } from './prompts.js';
import {
  appendLine, checkSettings, inOrder, limited, otherStagesFailures, readWorkFile, runPool, Semaphore, StageInterrupted,
  WORK_FILES, writeLines, type Failure,
} from './stage.js';

/** An instruction to prepare: what PreparedItem takes from its input line. */
export interface Instruction {
  id: string;
  prompt: ChatMessage[];
  category?: string;
  specialty?: string;
  source: { format: string; [key: string]: unknown };
}

/** An instruction dropped for its difficulty score (WORK/filtered.jsonl). */
export interface FilteredItem {
  id: string;
  score: number;
  /** The judge's reason. */
  reason: string;
}

/** A candidate endpoint, from --candidates URL=MODEL. */
export interface Endpoint {
  url: string;
  model: string;
}

/** "URL=MODEL,URL=MODEL" -> endpoints, or an Error naming the part that is not URL=MODEL. */
export function parseEndpoints(spec: string): Endpoint[] {
  const parts = spec.split(',').map((p) => p.trim());
  if (parts.every((p) => p === '')) throw new Error('expected URL=MODEL[,URL=MODEL...], got nothing');
  return parts.map((part, i) => {
    const m = /^(https?:\/\/[^\s=,]+)=(\S+)$/.exec(part);
    if (!m) throw new Error(`part ${i + 1} ${JSON.stringify(part)} is not URL=MODEL (e.g. http://127.0.0.1:8000=Qwen/Qwen3-8B)`);
    return { url: m[1], model: m[2] };
  });
}

const ROLES = new Set(['system', 'user', 'assistant', 'tool']);

/**
 * Instructions from a file or folder. The promedical format takes any JSON Lines object with an
 * `id` and a `prompt` (a string, or a list of {role, content} messages); criteria and responses,
 * if there, are ignored. Other formats go through their importers (src/data/importers.ts).
 * Ids must be unique: they key every work file. Bad lines are DataErrors (file:line: field).
 */
export async function readInstructions(input: string, format: RecordFormat = 'promedical'): Promise<Instruction[]> {
  const out: Instruction[] = [];
  const firstLine = new Map<string, string>();
  const add = (item: Instruction, file: string, line: number) => {
    const before = firstLine.get(item.id);
    if (before) throw new DataError(file, line, 'id', `duplicate id "${item.id}" (first at ${before}); ids key the work files, so they must be unique`);
    firstLine.set(item.id, `${file}:${line}`);
    out.push(item);
  };
  if (format !== 'promedical') {
    for (const r of await loadRecords(input, { format })) {
      const line = typeof r.source?.line === 'number' ? r.source.line : 0;
      add({ id: r.id, prompt: r.prompt, ...(r.category ? { category: r.category } : {}), ...(r.specialty ? { specialty: r.specialty } : {}), source: r.source ?? { format } }, input, line);
    }
    return out;
  }
  if (!fs.existsSync(input)) throw new DataError(input, 0, '', 'no such file or folder');
  const files = fs.statSync(input).isDirectory()
    ? fs.readdirSync(input).filter((f) => f.endsWith('.jsonl')).sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).map((f) => path.join(input, f))
    : [input];
  for (const file of files) {
    for await (const item of jsonLines(file)) {
      if (item instanceof DataError) throw item;
      add(instructionOf(item.value, file, item.line), file, item.line);
    }
  }
  if (out.length === 0) throw new DataError(input, 0, '', `0 instructions in ${input}${files.length === 0 ? ' (no .jsonl file in the folder)' : ''}`);
  return out;
}

function instructionOf(v: unknown, file: string, line: number): Instruction {
  const fail = (field: string, reason: string): never => {
    throw new DataError(file, line, field, reason);
  };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail('', 'expected an object with "id" and "prompt"');
  const r = v as Record<string, unknown>;
  if (typeof r.id !== 'string' || r.id.trim() === '') fail('id', 'expected a non-empty string');
  let prompt: ChatMessage[];
  if (typeof r.prompt === 'string' && r.prompt.trim() !== '') prompt = [{ role: 'user', content: r.prompt }];
  else if (Array.isArray(r.prompt) && r.prompt.length > 0) {
    prompt = r.prompt.map((m, i) => {
      const msg = m as Record<string, unknown>;
      if (typeof m !== 'object' || m === null) fail(`prompt[${i}]`, 'expected a {role, content} message');
      if (!ROLES.has(msg.role as string)) fail(`prompt[${i}].role`, `expected one of system, user, assistant, tool, got ${JSON.stringify(msg.role)}`);
      if (typeof msg.content !== 'string') fail(`prompt[${i}].content`, 'expected a string');
      return { role: msg.role as string, content: msg.content as string };
    });
    if (!prompt.some((m) => m.role === 'user' && m.content.trim() !== '')) fail('prompt', 'no user message with text');
  } else return fail('prompt', 'expected a non-empty string or a non-empty list of {role, content} messages');
  for (const key of ['category', 'specialty'] as const) if (r[key] !== undefined && typeof r[key] !== 'string') fail(key, 'expected a string');
  return {
    id: r.id as string,
    prompt: prompt!,
    ...(typeof r.category === 'string' ? { category: r.category } : {}),
    ...(typeof r.specialty === 'string' ? { specialty: r.specialty } : {}),
    source: { format: 'promedical', file, line },
  };
}

/** The text dedup compares: every message of the conversation. */
export const instructionText = (i: { prompt: ChatMessage[] }) => i.prompt.map((m) => m.content).join('\n');

export interface PrepareOptions {
  /** The work folder (created if absent). */
  work: string;
  instructions: Instruction[];
  judge: ChatClient;
  /** One client per candidate endpoint; each answers `numCandidates` times per instruction. */
  candidates: ChatClient[];
  numCandidates?: number;
  /** Difficulty kept, both ends included (default 5 and 9, the paper's). */
  minDifficulty?: number;
  maxDifficulty?: number;
  /** Candidates' sampling temperature (default 0.7) and most tokens (default 1024). */
  temperature?: number;
  maxTokens?: number;
  /** Jaccard threshold of near-duplicates (default 0.8). */
  dedupThreshold?: number;
  /** Seeds the dedup hashes and the candidates' sampling seeds (default 0). */
  seed?: number;
  /** Most LLM calls in flight (default 4). */
  concurrency?: number;
  /** What the work folder's settings record about the input (e.g. its path and format). */
  inputSettings?: Record<string, unknown>;
  /** Ctrl-C: the calls in flight are aborted, finished items stay, StageInterrupted is thrown. */
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface PrepareSummary {
  instructions: number;
  duplicates: number;
  prepared: number;
  filtered: number;
  failed: number;
  /** Items finished by an earlier run of this work folder. */
  resumed: number;
}

/** A candidate's sampling seed: fixed per (seed, instruction, candidate), for servers that honour it. */
function candidateSeed(seed: number, id: string, k: number): number {
  let h = 0x811c9dc5 ^ seed;
  for (const ch of `${id}#${k}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
  return (h >>> 0) % 2 ** 31;
}

/** Why a call failed, with its HTTP attempts, for failures.jsonl. */
function failureOf(id: string, what: string, err: unknown): Failure {
  if (err instanceof ChatError || err instanceof ReplyError) return { id, stage: 'prepare', error: `${what}: ${err.message}`, attempts: err.attempts };
  throw err;
}

export async function prepareInstructions(opts: PrepareOptions): Promise<PrepareSummary> {
  const min = opts.minDifficulty ?? 5;
  const max = opts.maxDifficulty ?? 9;
  const perEndpoint = opts.numCandidates ?? 1;
  const temperature = opts.temperature ?? 0.7;
  const maxTokens = opts.maxTokens ?? 1024;
  const seed = opts.seed ?? 0;
  const log = opts.log ?? (() => {});
  if (!(Number.isInteger(min) && Number.isInteger(max) && min >= 0 && max <= 10 && min <= max)) throw new RangeError(`difficulty range must be whole numbers 0 <= min <= max <= 10, got ${min}-${max}`);
  if (!(Number.isInteger(perEndpoint) && perEndpoint >= 1)) throw new RangeError(`numCandidates must be a whole number >= 1, got ${perEndpoint}`);
  if (opts.candidates.length === 0) throw new RangeError('at least one candidate endpoint is needed');
  const threshold = opts.dedupThreshold ?? DEFAULT_THRESHOLD;

  const { kept, duplicates } = dedupe(opts.instructions, instructionText, { threshold, seed });
  const keptIds = kept.map((i) => i.id);
  const file = (name: keyof typeof WORK_FILES) => path.join(opts.work, WORK_FILES[name]);
  const writeSettings = checkSettings(opts.work, 'prepare', {
    ...opts.inputSettings,
    dedup_threshold: threshold,
    seed,
    // Models, not URLs: a server restarted elsewhere serves the same answers.
    judge_model: opts.judge.model,
    min_difficulty: min,
    max_difficulty: max,
    candidate_models: opts.candidates.map((c) => c.model),
    num_candidates: perEndpoint,
    temperature,
    max_tokens: maxTokens,
  });

  // What earlier runs finished; ids outside this run's kept set mean another input or settings.
  const prepared = readWorkFile<PreparedItem>(file('prepared'), { repair: true, log });
  const filtered = readWorkFile<FilteredItem>(file('filtered'), { repair: true, log });
  const keptSet = new Set(keptIds);
  for (const [name, items] of [['prepared', prepared], ['filtered', filtered]] as const) {
    const stray = items.find((x) => !keptSet.has(x.id));
    if (stray) throw new DataError(file(name), 0, '', `holds "${stray.id}", which is not among this input's kept instructions: another input's work folder? Use a new --work folder`);
  }
  const others = otherStagesFailures(opts.work, 'prepare');
  writeSettings();
  writeLines(file('duplicates'), duplicates satisfies Duplicate[]);
  writeLines(file('failures'), others);
  const done = new Set([...prepared, ...filtered].map((x) => x.id));
  const pending = kept.filter((i) => !done.has(i.id));
  log(`${opts.instructions.length} instructions, ${duplicates.length} near-duplicates dropped, ${done.size} done before, ${pending.length} to prepare`);

  const calls = new Semaphore(opts.concurrency ?? 4);
  const judge = limited(opts.judge, calls);
  const endpoints = opts.candidates.map((c) => limited(c, calls));
  const failures: Failure[] = [];
  let finished = 0;

  const prepareOne = async (item: Instruction, signal: AbortSignal) => {
    const outcome = await judged(item, signal);
    if ('stage' in outcome) {
      failures.push(outcome);
      appendLine(file('failures'), outcome);
    } else if ('score' in outcome) {
      filtered.push(outcome);
      appendLine(file('filtered'), outcome);
    } else {
      prepared.push(outcome);
      appendLine(file('prepared'), outcome);
    }
    if (++finished % 50 === 0) log(`${finished}/${pending.length} done`);
  };

  const judged = async (item: Instruction, signal: AbortSignal): Promise<PreparedItem | FilteredItem | Failure> => {
    let difficulty: { score: number; reason: string };
    try {
      ({ value: difficulty } = await askJson(judge, { messages: judgeMessages(item.prompt), schema: JUDGE_SCHEMA, temperature: 0, maxTokens: 300 }, { check: checkDifficulty, repair: repairMessage }, signal));
    } catch (err) {
      return failureOf(item.id, `difficulty judge (${opts.judge.model} at ${opts.judge.url})`, err);
    }
    if (difficulty.score < min || difficulty.score > max) return { id: item.id, score: difficulty.score, reason: difficulty.reason };
    const answers = await collectCandidates(item, signal);
    if (!Array.isArray(answers)) return answers;
    return {
      id: item.id,
      prompt: item.prompt,
      ...(item.category !== undefined ? { category: item.category } : {}),
      ...(item.specialty !== undefined ? { specialty: item.specialty } : {}),
      difficulty: { score: difficulty.score, reason: difficulty.reason, model: opts.judge.model },
      candidates: answers,
      source: item.source,
    };
  };

  /** Every candidate, or the first failure (the item is then reported, not kept with fewer). */
  const collectCandidates = async (item: Instruction, signal: AbortSignal): Promise<Candidate[] | Failure> => {
    const mine = new AbortController();
    const onAbort = () => mine.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    let first: Failure | undefined;
    const jobs = endpoints.flatMap((client, e) => Array.from({ length: perEndpoint }, (_, j) => ({ client, k: e * perEndpoint + j })));
    try {
      const answers = await Promise.all(
        jobs.map(async ({ client, k }): Promise<Candidate | null> => {
          try {
            const text = await answer(client, item, k, mine.signal);
            return { id: `c${k}`, model: client.model, text };
          } catch (err) {
            if (err instanceof Aborted) {
              if (signal.aborted) throw err;
              return null; // a sibling failed first
            }
            first ??= failureOf(item.id, `candidate c${k} (${client.model} at ${client.url})`, err);
            mine.abort();
            return null;
          }
        }),
      );
      return first ?? (answers as Candidate[]);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  };

  /** One candidate answer; an empty one is asked for again once. */
  const answer = async (client: ChatClient, item: Instruction, k: number, signal: AbortSignal): Promise<string> => {
    let attempts = 0;
    for (let ask = 0; ask < 2; ask++) {
      const reply = await client.chat({ messages: candidateMessages(item.prompt), temperature, maxTokens, seed: candidateSeed(seed, item.id, k + ask * 1000) }, signal);
      attempts += reply.attempts;
      if (reply.content.trim() !== '') return reply.content;
    }
    throw new ReplyError('the answer was empty twice', ['empty answer'], attempts);
  };

  const interrupted = await runPool(pending, opts.concurrency ?? 4, prepareOne, opts.signal);
  const left = pending.length - finished;
  if (interrupted && left > 0) throw new StageInterrupted('prepare', done.size + finished, left);
  // All done: the same files, in input order, however many runs it took.
  writeLines(file('prepared'), inOrder(prepared, keptIds));
  writeLines(file('filtered'), inOrder(filtered, keptIds));
  writeLines(file('failures'), [...others, ...inOrder(failures, keptIds)]);
  const summary = { instructions: opts.instructions.length, duplicates: duplicates.length, prepared: prepared.length, filtered: filtered.length, failed: failures.length, resumed: done.size };
  log(`${summary.prepared} prepared, ${summary.filtered} outside difficulty ${min}-${max}, ${summary.failed} failed (${WORK_FILES.failures}), ${summary.duplicates} duplicates (${WORK_FILES.duplicates})`);
  return summary;
}

/** The judge's reply: {score: whole number 0-10, reason: string}. */
export function checkDifficulty(v: unknown): { value?: { score: number; reason: string }; problems: string[] } {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { problems: ['expected a JSON object {"score": 0-10, "reason": "..."}'] };
  const r = v as Record<string, unknown>;
  const problems: string[] = [];
  if (!(typeof r.score === 'number' && Number.isInteger(r.score) && r.score >= 0 && r.score <= 10)) problems.push(`"score" must be a whole number from 0 to 10, got ${JSON.stringify(r.score)}`);
  if (typeof r.reason !== 'string') problems.push(`"reason" must be a string, got ${JSON.stringify(r.reason)}`);
  return problems.length ? { problems } : { value: { score: r.score as number, reason: r.reason as string }, problems };
}
