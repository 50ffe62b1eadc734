// Stage 2 of the rubric pipeline (docs/rubrics.md): each prepared item -> an LLM-drafted schema-v1
// rubric (proficiency criteria with weights summing to 1, excellence bonuses, safety vetoes),
// asked under a JSON schema, checked, repaired by one re-ask quoting the problems or reported;
// optionally each candidate pre-graded per criterion by the same LLM -> WORK/drafts.jsonl.
import * as path from 'node:path';
import { DataError, TIERS, type Criterion, type Tier } from '../data/schema.js';
import { askJson, ChatError, ReplyError, type ChatClient } from './chat_client.js';
import { normalise } from './dedup.js';
import type { DraftItem, PreparedItem } from './items.js';
import { DRAFT_SCHEMA, draftMessages, MAX_CRITERIA, MAX_CRITERION_CHARS, pregradeMessages, pregradeSchema, repairMessage } from './prompts.js';
import {
  appendLine, checkSettings, inOrder, limited, otherStagesFailures, readWorkFile, runPool, Semaphore, StageInterrupted,
  WORK_FILES, writeLines, type Failure,
} from './stage.js';

/** How far the proficiency weights may sum from 1. */
export const WEIGHT_TOLERANCE = 1e-3;
const ID_PREFIX: Record<Tier, string> = { proficiency: 'p', excellence: 'e', safety: 's' };

/**
 * A drafted rubric reply -> schema-v1 criteria with ids p1.., e1.., s1.. (grouped by tier, in
 * the reply's order within each), or every problem found: not {criteria: [...]}, a text empty,
 * too long or repeated (compared normalised), a tier unknown or missing, a proficiency weight
 * not > 0, proficiency weights not summing to 1 (within 1e-3; never renormalised: a model that
 * got the arithmetic wrong may have got the priorities wrong too).
 */
export function checkDraft(v: unknown): { value?: Criterion[]; problems: string[] } {
  const list = (v as { criteria?: unknown } | null)?.criteria;
  if (typeof v !== 'object' || v === null || !Array.isArray(list)) return { problems: ['expected a JSON object {"criteria": [...]}'] };
  const problems: string[] = [];
  if (list.length > MAX_CRITERIA) problems.push(`${list.length} criteria; at most ${MAX_CRITERIA}`);
  const seen = new Map<string, number>();
  const byTier: Record<Tier, Criterion[]> = { proficiency: [], excellence: [], safety: [] };
  list.forEach((raw, i) => {
    const c = (raw ?? {}) as Record<string, unknown>;
    const at = `criteria[${i}]`;
    const text = typeof c.text === 'string' ? c.text.trim() : '';
    if (text === '') problems.push(`${at}.text is empty or missing`);
    else if (text.length > MAX_CRITERION_CHARS) problems.push(`${at}.text has ${text.length} characters; at most ${MAX_CRITERION_CHARS}`);
    else {
      const key = normalise(text);
      const first = seen.get(key);
      if (first !== undefined) problems.push(`${at} repeats criteria[${first}] ("${text.slice(0, 60)}")`);
      else seen.set(key, i);
    }
    const tier = c.tier as Tier;
    if (!TIERS.includes(tier)) {
      problems.push(`${at}.tier must be proficiency, excellence or safety, got ${JSON.stringify(c.tier)}`);
      return;
    }
    const criterion: Criterion = { id: '', text, tier };
    if (tier === 'proficiency') {
      if (!(typeof c.weight === 'number' && Number.isFinite(c.weight) && c.weight > 0)) problems.push(`${at} (proficiency) needs a weight > 0, got ${JSON.stringify(c.weight)}`);
      else criterion.weight = c.weight;
    }
    byTier[tier].push(criterion);
  });
  for (const tier of TIERS) if (byTier[tier].length === 0) problems.push(`no ${tier} criterion: write at least one`);
  const weights = byTier.proficiency.map((c) => c.weight ?? 0);
  const sum = weights.reduce((a, w) => a + w, 0);
  if (byTier.proficiency.length > 0 && Math.abs(sum - 1) > WEIGHT_TOLERANCE) problems.push(`the proficiency weights (${weights.join(' + ')}) sum to ${Number(sum.toFixed(6))}, not 1`);
  if (problems.length) return { problems };
  const criteria = TIERS.flatMap((tier) => byTier[tier].map((c, i) => ({ ...c, id: `${ID_PREFIX[tier]}${i + 1}` })));
  return { value: criteria, problems };
}

/** A pregrade reply: true or false for every criterion id, nothing else. */
export function checkGrades(criteria: Criterion[]): (v: unknown) => { value?: Record<string, boolean>; problems: string[] } {
  return (v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return { problems: ['expected a JSON object {"<criterion id>": true|false, ...}'] };
    const r = v as Record<string, unknown>;
    const ids = new Set(criteria.map((c) => c.id));
    const problems = [
      ...criteria.filter((c) => typeof r[c.id] !== 'boolean').map((c) => `"${c.id}" must be true or false, got ${JSON.stringify(r[c.id])}`),
      ...Object.keys(r).filter((k) => !ids.has(k)).map((k) => `"${k}" is not a criterion id`),
    ];
    return problems.length ? { problems } : { value: Object.fromEntries(criteria.map((c) => [c.id, r[c.id] as boolean])), problems };
  };
}

/** WORK/prepared.jsonl, checked as far as draft reads it (a torn last line is left to prepare). */
export function readPrepared(work: string, log?: (line: string) => void): PreparedItem[] {
  const file = path.join(work, WORK_FILES.prepared);
  const items = readWorkFile<PreparedItem>(file, { log });
  if (items.length === 0) throw new DataError(file, 0, '', 'no prepared items (run `promedical rubrics prepare` on this --work folder first)');
  const ids = new Set<string>();
  items.forEach((it, i) => {
    const fail = (field: string, reason: string) => new DataError(file, i + 1, field, reason);
    if (typeof it?.id !== 'string' || it.id === '') throw fail('id', 'expected a non-empty string');
    if (ids.has(it.id)) throw fail('id', `duplicate id "${it.id}"`);
    ids.add(it.id);
    if (!Array.isArray(it.prompt) || it.prompt.length === 0) throw fail('prompt', 'expected a non-empty list of messages');
    if (!Array.isArray(it.candidates)) throw fail('candidates', 'expected a list');
    it.candidates.forEach((c, j) => {
      if (typeof c?.id !== 'string' || typeof c.text !== 'string') throw fail(`candidates[${j}]`, 'expected {id, model, text} strings');
    });
  });
  return items;
}

export interface DraftOptions {
  work: string;
  drafter: ChatClient;
  /** Default 0.3 and 2048. */
  temperature?: number;
  maxTokens?: number;
  /** Ask the drafter to grade every candidate on every criterion (default false). */
  pregrade?: boolean;
  /** Most LLM calls in flight (default 4). */
  concurrency?: number;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface DraftSummary {
  prepared: number;
  drafted: number;
  /** Drafts that needed the repair re-ask. */
  repaired: number;
  failed: number;
  resumed: number;
}

export async function draftRubrics(opts: DraftOptions): Promise<DraftSummary> {
  const log = opts.log ?? (() => {});
  const temperature = opts.temperature ?? 0.3;
  const maxTokens = opts.maxTokens ?? 2048;
  const pregrade = opts.pregrade ?? false;
  const items = readPrepared(opts.work, log);
  const ids = items.map((i) => i.id);
  const out = path.join(opts.work, WORK_FILES.drafts);
  const failuresFile = path.join(opts.work, WORK_FILES.failures);
  const writeSettings = checkSettings(opts.work, 'draft', { drafter_model: opts.drafter.model, temperature, max_tokens: maxTokens, pregrade });
  const drafts = readWorkFile<DraftItem>(out, { repair: true, log });
  const known = new Set(ids);
  const stray = drafts.find((d) => !known.has(d.id));
  if (stray) throw new DataError(out, 0, '', `holds "${stray.id}", which is not in ${WORK_FILES.prepared}: another work folder's drafts?`);
  const others = otherStagesFailures(opts.work, 'draft');
  writeSettings();
  writeLines(failuresFile, others);
  const done = new Set(drafts.map((d) => d.id));
  const pending = items.filter((i) => !done.has(i.id));
  log(`${items.length} prepared items, ${done.size} drafted before, ${pending.length} to draft${pregrade ? ' and pre-grade' : ''}`);

  const drafter = limited(opts.drafter, new Semaphore(opts.concurrency ?? 4));
  const failures: Failure[] = [];
  let finished = 0;

  const draftOne = async (item: PreparedItem, signal: AbortSignal) => {
    const outcome = await drafted(item, signal);
    if ('stage' in outcome) {
      failures.push(outcome);
      appendLine(failuresFile, outcome);
    } else {
      drafts.push(outcome);
      appendLine(out, outcome);
    }
    if (++finished % 50 === 0) log(`${finished}/${pending.length} done`);
  };

  const drafted = async (item: PreparedItem, signal: AbortSignal): Promise<DraftItem | Failure> => {
    const failed = (what: string, err: unknown): Failure => {
      if (err instanceof ChatError || err instanceof ReplyError) return { id: item.id, stage: 'draft', error: `${what}: ${err.message}`, attempts: err.attempts };
      throw err;
    };
    let rubric;
    try {
      rubric = await askJson(drafter, { messages: draftMessages(item.prompt, item.candidates), schema: DRAFT_SCHEMA, temperature, maxTokens }, { check: checkDraft, repair: repairMessage }, signal);
    } catch (err) {
      return failed(`draft (${opts.drafter.model} at ${opts.drafter.url})`, err);
    }
    const criteria = rubric.value;
    const result: DraftItem = { ...item, criteria, draft: { model: opts.drafter.model, repaired: rubric.repaired } };
    if (!pregrade) return result;
    // Pre-grades are asked for one candidate at a time (in parallel); one that fails reports the item.
    const grades: Record<string, Record<string, boolean>> = {};
    for (const [j, settled] of (
      await Promise.allSettled(item.candidates.map((c) => askJson(drafter, { messages: pregradeMessages(item.prompt, criteria, c), schema: pregradeSchema(criteria), temperature: 0, maxTokens: 1024 }, { check: checkGrades(criteria), repair: repairMessage }, signal)))
    ).entries()) {
      const c = item.candidates[j];
      if (settled.status === 'rejected') return failed(`pregrade of ${c.id} (${opts.drafter.model} at ${opts.drafter.url})`, settled.reason);
      grades[c.id] = settled.value.value;
    }
    return { ...result, pregrades: grades };
  };

  const interrupted = await runPool(pending, opts.concurrency ?? 4, draftOne, opts.signal);
  const left = pending.length - finished;
  if (interrupted && left > 0) throw new StageInterrupted('draft', done.size + finished, left);
  writeLines(out, inOrder(drafts, ids));
  writeLines(failuresFile, [...others, ...inOrder(failures, ids)]);
  const summary = { prepared: items.length, drafted: drafts.length, repaired: drafts.filter((d) => d.draft.repaired).length, failed: failures.length, resumed: done.size };
  log(`${summary.drafted} drafted (${summary.repaired} after one repair), ${summary.failed} failed (${WORK_FILES.failures})`);
  return summary;
}
