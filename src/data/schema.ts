// Schema v1 of a rubric-annotated medical record, and its validator. Criteria are phrased as what
// a good response does, so "met" is always good; a safety criterion that is not met is a
// violation (the veto tier of ProMedical).
import type { ChatMessage } from './chat.js';

export type Tier = 'proficiency' | 'excellence' | 'safety';
export const TIERS: readonly Tier[] = ['proficiency', 'excellence', 'safety'];

export interface Criterion {
  id: string;
  /** What a good response does, e.g. "Tells the user to call emergency services now". */
  text: string;
  tier: Tier;
  /** Share of S1 for proficiency criteria (weights of a record sum to 1). */
  weight?: number;
  /** e.g. accuracy, completeness, context_awareness, communication_quality, instruction_following. */
  axis?: string;
  /** Original signed points (HealthBench); negative means the original item was undesirable. */
  points?: number;
  tags?: string[];
}

export interface ResponseItem {
  id: string;
  text: string;
  /** criterion id -> met (true/false) or a probability of being met. */
  grades?: Record<string, boolean | number>;
}

export interface Preference {
  chosen: string;
  rejected: string;
  /** The criterion the preference is about; none for a holistic preference. */
  criterion?: string;
}

export interface RubricRecord {
  id: string;
  prompt: ChatMessage[];
  category?: string;
  specialty?: string;
  criteria: Criterion[];
  responses: ResponseItem[];
  preferences?: Preference[];
  /** Where the record came from: format name plus the original fields an importer kept. */
  source?: { format: string; [key: string]: unknown };
}

/** Bad input, with the file, line and field path it is about. */
export class DataError extends Error {
  override readonly name = 'DataError';
  constructor(
    readonly file: string,
    readonly line: number,
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${file}:${line}: ${field ? `${field}: ` : ''}${reason}`);
  }
}

const ROLES = new Set(['system', 'user', 'assistant', 'tool']);

/** Checks `value` against schema v1 and returns it typed, or throws DataError. */
export function validateRecord(value: unknown, file = '<input>', line = 0): RubricRecord {
  const fail = (field: string, reason: string): never => {
    throw new DataError(file, line, field, reason);
  };
  const obj = (v: unknown, field: string) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(field, `expected an object, got ${describe(v)}`);
    return v as Record<string, unknown>;
  };
  const str = (v: unknown, field: string, nonEmpty = true) => {
    if (typeof v !== 'string' || (nonEmpty && v.trim() === '')) fail(field, `expected a non-empty string, got ${describe(v)}`);
    return v as string;
  };
  const arr = (v: unknown, field: string) => {
    if (!Array.isArray(v)) fail(field, `expected an array, got ${describe(v)}`);
    return v as unknown[];
  };
  const r = obj(value, '');
  str(r.id, 'id');
  const prompt = arr(r.prompt, 'prompt');
  if (prompt.length === 0) fail('prompt', 'expected at least one message');
  prompt.forEach((m, i) => {
    const msg = obj(m, `prompt[${i}]`);
    if (!ROLES.has(msg.role as string)) fail(`prompt[${i}].role`, `expected one of system, user, assistant, tool, got ${describe(msg.role)}`);
    str(msg.content, `prompt[${i}].content`, false);
  });
  for (const key of ['category', 'specialty'] as const) if (r[key] !== undefined) str(r[key], key);

  const criteria = arr(r.criteria, 'criteria');
  const criterionIds = new Set<string>();
  criteria.forEach((c, i) => {
    const f = `criteria[${i}]`;
    const cr = obj(c, f);
    const id = str(cr.id, `${f}.id`);
    if (criterionIds.has(id)) fail(`${f}.id`, `duplicate criterion id "${id}"`);
    criterionIds.add(id);
    str(cr.text, `${f}.text`);
    if (!TIERS.includes(cr.tier as Tier)) fail(`${f}.tier`, `expected one of proficiency, excellence, safety, got ${describe(cr.tier)}`);
    if (cr.weight !== undefined && !(typeof cr.weight === 'number' && cr.weight >= 0 && Number.isFinite(cr.weight))) fail(`${f}.weight`, `expected a number >= 0, got ${describe(cr.weight)}`);
    if (cr.points !== undefined && !(typeof cr.points === 'number' && Number.isFinite(cr.points))) fail(`${f}.points`, `expected a number, got ${describe(cr.points)}`);
    if (cr.axis !== undefined) str(cr.axis, `${f}.axis`);
    if (cr.tags !== undefined && !(Array.isArray(cr.tags) && cr.tags.every((t) => typeof t === 'string'))) fail(`${f}.tags`, 'expected an array of strings');
  });

  const responses = arr(r.responses, 'responses');
  const responseIds = new Set<string>();
  responses.forEach((x, i) => {
    const f = `responses[${i}]`;
    const resp = obj(x, f);
    const id = str(resp.id, `${f}.id`);
    if (responseIds.has(id)) fail(`${f}.id`, `duplicate response id "${id}"`);
    responseIds.add(id);
    str(resp.text, `${f}.text`, false);
    if (resp.grades !== undefined) {
      for (const [cid, g] of Object.entries(obj(resp.grades, `${f}.grades`))) {
        if (!criterionIds.has(cid)) fail(`${f}.grades.${cid}`, `no criterion has id "${cid}"`);
        if (!(typeof g === 'boolean' || (typeof g === 'number' && g >= 0 && g <= 1))) fail(`${f}.grades.${cid}`, `expected true, false or a probability in [0, 1], got ${describe(g)}`);
      }
    }
  });

  if (r.preferences !== undefined) {
    arr(r.preferences, 'preferences').forEach((p, i) => {
      const f = `preferences[${i}]`;
      const pr = obj(p, f);
      for (const side of ['chosen', 'rejected'] as const) {
        if (!responseIds.has(str(pr[side], `${f}.${side}`))) fail(`${f}.${side}`, `no response has id "${String(pr[side])}"`);
      }
      if (pr.chosen === pr.rejected) fail(f, 'chosen and rejected are the same response');
      if (pr.criterion !== undefined && !criterionIds.has(str(pr.criterion, `${f}.criterion`))) fail(`${f}.criterion`, `no criterion has id "${String(pr.criterion)}"`);
    });
  }
  if (r.source !== undefined) str(obj(r.source, 'source').format, 'source.format');
  return r as unknown as RubricRecord;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return v.length > 40 ? `"${v.slice(0, 40)}..."` : `"${v}"`;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

/** The grade of a response on a criterion as a number in [0, 1], or undefined if ungraded. */
export function gradeValue(g: boolean | number | undefined): number | undefined {
  return g === undefined ? undefined : typeof g === 'boolean' ? (g ? 1 : 0) : g;
}

/**
 * Per-criterion preference pairs: the explicit preferences, plus, for each criterion, every pair
 * of responses where one meets it and the other does not (grades compared; equal grades give no
 * pair). Holistic explicit preferences (no criterion) are kept as they are.
 */
export function criterionPairs(record: RubricRecord): Preference[] {
  const pairs: Preference[] = [...(record.preferences ?? [])];
  const seen = new Set(pairs.map((p) => `${p.chosen}>${p.rejected}@${p.criterion ?? ''}`));
  for (const c of record.criteria) {
    for (const a of record.responses) {
      for (const b of record.responses) {
        const ga = gradeValue(a.grades?.[c.id]);
        const gb = gradeValue(b.grades?.[c.id]);
        if (ga === undefined || gb === undefined || !(ga > gb)) continue;
        const key = `${a.id}>${b.id}@${c.id}`;
        if (!seen.has(key)) pairs.push({ chosen: a.id, rejected: b.id, criterion: c.id });
        seen.add(key);
      }
    }
  }
  return pairs;
}
