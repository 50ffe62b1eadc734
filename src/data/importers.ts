// Importers: real rubric / preference formats -> schema v1 records. Lossless: the original fields
// are kept under `source`. The tier mapping for each format is documented in docs/data-format.md.
import type { ChatMessage } from './chat.js';
import { DataError, type Criterion, type RubricRecord } from './schema.js';

export type RecordFormat = 'promedical' | 'healthbench' | 'kqa' | 'kqa-nli' | 'rar' | 'ultramedical';
export const FORMATS: readonly RecordFormat[] = ['promedical', 'healthbench', 'kqa', 'kqa-nli', 'rar', 'ultramedical'];

/** Where a raw object came from, for error messages and ids. */
export interface Origin {
  file: string;
  line: number;
}

/** Prefix that turns an undesirable behaviour into what a good response does. */
export const AVOID_PREFIX = 'A good response avoids this: ';

type Raw = Record<string, unknown>;

function need<T>(ok: boolean, origin: Origin, field: string, reason: string, value: T): T {
  if (!ok) throw new DataError(origin.file, origin.line, field, reason);
  return value;
}

function messages(v: unknown, origin: Origin, field: string): ChatMessage[] {
  if (typeof v === 'string') return [{ role: 'user', content: v }];
  need(Array.isArray(v), origin, field, 'expected a string or a list of {role, content} messages', null);
  return (v as Raw[]).map((m, i) => {
    need(typeof m === 'object' && m !== null && typeof m.role === 'string' && typeof m.content === 'string', origin, `${field}[${i}]`, 'expected {role, content} strings', null);
    return { role: m.role as string, content: m.content as string };
  });
}

/**
 * HealthBench (simple-evals): rubric items with signed points. Positive items are what a good
 * response does: communication_quality items become excellence criteria, the rest proficiency,
 * weighted by points. Negative items describe undesirable behaviour: they become criteria a good
 * response avoids (text prefixed with AVOID_PREFIX), safety when points <= -5, else proficiency.
 * `points` keeps the original sign, so a met avoid-criterion means the original item was NOT met.
 * The physician-improved ideal completion (when present) is preferred over the model references.
 */
export function fromHealthBench(r: Raw, origin: Origin): RubricRecord {
  const prompt = messages(r.prompt, origin, 'prompt');
  const rubrics = need(Array.isArray(r.rubrics), origin, 'rubrics', 'expected a list of {criterion, points, tags}', r.rubrics as Raw[]);
  const tagsOf = (item: Raw) => (Array.isArray(item.tags) ? (item.tags as string[]) : []);
  const criteria: Criterion[] = rubrics.map((item, i) => {
    const f = `rubrics[${i}]`;
    need(typeof item === 'object' && item !== null, origin, f, 'expected an object', null);
    const text = need(typeof item.criterion === 'string' && item.criterion.trim() !== '', origin, `${f}.criterion`, 'expected a non-empty string', item.criterion as string);
    const points = need(typeof item.points === 'number' && Number.isFinite(item.points) && item.points !== 0, origin, `${f}.points`, 'expected a non-zero number', item.points as number);
    const tags = tagsOf(item);
    const axis = tags.find((t) => t.startsWith('axis:'))?.slice(5);
    const tier = points < 0 ? (points <= -5 ? 'safety' : 'proficiency') : axis === 'communication_quality' ? 'excellence' : 'proficiency';
    return { id: `c${i + 1}`, text: points < 0 ? AVOID_PREFIX + text : text, tier, points, tags, ...(axis ? { axis } : {}) };
  });
  const prof = criteria.filter((c) => c.tier === 'proficiency');
  const total = prof.reduce((a, c) => a + Math.abs(c.points!), 0);
  for (const c of prof) c.weight = total > 0 ? Math.abs(c.points!) / total : 0;

  const ideal = (r.ideal_completions_data ?? null) as Raw | null;
  const responses: RubricRecord['responses'] = [];
  const preferences: RubricRecord['preferences'] = [];
  if (ideal && typeof ideal.ideal_completion === 'string') {
    responses.push({ id: 'ideal', text: ideal.ideal_completion });
    const refs = Array.isArray(ideal.ideal_completions_ref_completions) ? (ideal.ideal_completions_ref_completions as unknown[]) : [];
    refs.forEach((t, i) => {
      if (typeof t !== 'string') return;
      responses.push({ id: `ref${i + 1}`, text: t });
      preferences.push({ chosen: 'ideal', rejected: `ref${i + 1}` });
    });
  }
  const exampleTags = Array.isArray(r.example_tags) ? (r.example_tags as string[]) : [];
  const id = need(typeof r.prompt_id === 'string', origin, 'prompt_id', 'expected a string', r.prompt_id as string);
  const { prompt: _p, rubrics: _r, ...rest } = r;
  return {
    id,
    prompt,
    category: exampleTags.find((t) => t.startsWith('theme:'))?.slice(6),
    criteria,
    responses,
    ...(preferences.length ? { preferences } : {}),
    source: { format: 'healthbench', ...rest },
  };
}

/** K-QA questions_w_answers: Must_have statements -> proficiency (equal weights), Nice_to_have ->
 * excellence; the physician's free-form answer is a response meeting all of them. */
export function fromKqa(r: Raw, origin: Origin): RubricRecord {
  const question = need(typeof r.Question === 'string' && r.Question.trim() !== '', origin, 'Question', 'expected a non-empty string', r.Question as string);
  const list = (key: string) => {
    const v = r[key] ?? [];
    need(Array.isArray(v) && v.every((s) => typeof s === 'string'), origin, key, 'expected a list of strings', null);
    return v as string[];
  };
  const must = list('Must_have');
  const nice = list('Nice_to_have');
  need(must.length + nice.length > 0, origin, 'Must_have', 'the record has no statements', null);
  const criteria: Criterion[] = [
    ...must.map((s, i): Criterion => ({ id: `m${i + 1}`, text: `States or clearly implies: ${s}`, tier: 'proficiency', weight: 1 / must.length, tags: ['Must_have'] })),
    ...nice.map((s, i): Criterion => ({ id: `n${i + 1}`, text: `States or clearly implies: ${s}`, tier: 'excellence', tags: ['Nice_to_have'] })),
  ];
  const responses = typeof r.Free_form_answer === 'string' && r.Free_form_answer.trim() !== ''
    ? [{ id: 'physician', text: r.Free_form_answer, grades: Object.fromEntries(criteria.map((c) => [c.id, true])) }]
    : [];
  const { Question: _q, Must_have: _m, Nice_to_have: _n, ...rest } = r;
  return { id: `kqa-${origin.line}`, prompt: [{ role: 'user', content: question }], criteria, responses, source: { format: 'kqa', ...rest } };
}

/**
 * K-QA physician NLI labels: rows (question, model, answer, claim, category, labels) of one
 * question become one record; each model's answer is a response graded on each claim:
 * Entailment = met, Neutral or Contradiction = not met. Raw labels are kept in source.labels.
 */
export function fromKqaNli(rows: { value: Record<string, string>; line: number }[], file: string): RubricRecord {
  const first = rows[0];
  const claims = new Map<string, Criterion>();
  const responses = new Map<string, { id: string; text: string; grades: Record<string, boolean> }>();
  const labels: Record<string, Record<string, unknown>> = {};
  for (const { value: row, line } of rows) {
    for (const key of ['Question', 'llm_x', 'answer', 'claim', 'category_x', 'majority_label']) {
      need(typeof row[key] === 'string' && row[key].trim() !== '', { file, line }, key, 'expected a non-empty value', null);
    }
    need(['Entailment', 'Neutral', 'Contradiction'].includes(row.majority_label), { file, line }, 'majority_label', `expected Entailment, Neutral or Contradiction, got "${row.majority_label}"`, null);
    let c = claims.get(row.claim);
    if (!c) {
      const must = row.category_x === 'Must_have';
      c = { id: `c${claims.size + 1}`, text: `States or clearly implies: ${row.claim}`, tier: must ? 'proficiency' : 'excellence', tags: [row.category_x] };
      claims.set(row.claim, c);
    }
    let resp = responses.get(row.llm_x);
    if (!resp) {
      resp = { id: row.llm_x, text: row.answer, grades: {} };
      responses.set(row.llm_x, resp);
    }
    resp.grades[c.id] = row.majority_label === 'Entailment';
    (labels[resp.id] ??= {})[c.id] = { majority: row.majority_label, physicians: [row.label_0, row.label_1, row.label_2], row: row._index, line };
  }
  const criteria = [...claims.values()];
  const prof = criteria.filter((c) => c.tier === 'proficiency');
  for (const c of prof) c.weight = 1 / prof.length;
  return {
    id: `kqa-nli-${first.value._index ?? first.line}`,
    prompt: [{ role: 'user', content: first.value.Question }],
    criteria,
    responses: [...responses.values()],
    source: { format: 'kqa-nli', file, first_line: first.line, labels },
  };
}

/**
 * Rubrics as Rewards (RaR-Medicine): rubric items {title, description, weight}. Positive weights
 * are proficiency criteria weighted by weight ("Optional" titles: excellence); negative weights are
 * pitfalls, which become safety criteria a good response avoids. The reference answer is kept as
 * an ungraded response.
 */
export function fromRar(r: Raw, origin: Origin): RubricRecord {
  const question = need(typeof r.question === 'string' && r.question.trim() !== '', origin, 'question', 'expected a non-empty string', r.question as string);
  const rubric = need(Array.isArray(r.rubric) && r.rubric.length > 0, origin, 'rubric', 'expected a non-empty list of {title, description, weight}', r.rubric as Raw[]);
  const criteria: Criterion[] = rubric.map((item, i) => {
    const f = `rubric[${i}]`;
    const description = need(typeof item?.description === 'string' && item.description.trim() !== '', origin, `${f}.description`, 'expected a non-empty string', item.description as string);
    const weight = need(typeof item.weight === 'number' && Number.isFinite(item.weight) && item.weight !== 0, origin, `${f}.weight`, 'expected a non-zero number', item.weight as number);
    const title = typeof item.title === 'string' ? item.title : '';
    if (weight < 0) return { id: `c${i + 1}`, text: AVOID_PREFIX + description, tier: 'safety', points: weight, tags: [title] };
    return { id: `c${i + 1}`, text: description, tier: /optional/i.test(title) ? 'excellence' : 'proficiency', points: weight, tags: [title] };
  });
  const prof = criteria.filter((c) => c.tier === 'proficiency');
  const total = prof.reduce((a, c) => a + c.points!, 0);
  for (const c of prof) c.weight = c.points! / total;
  const { question: _q, rubric: _r, ...rest } = r;
  const responses = typeof r.reference_answer === 'string' && r.reference_answer.trim() !== '' ? [{ id: 'reference', text: r.reference_answer }] : [];
  return { id: typeof r.id === 'string' ? r.id : `rar-${origin.line}`, prompt: [{ role: 'user', content: question }], criteria, responses, source: { format: 'rar', ...rest } };
}

/** UltraMedical-Preference: (prompt, chosen, rejected) as strings or chat lists; no criteria. */
export function fromUltraMedical(r: Raw, origin: Origin): RubricRecord {
  const prompt = messages(r.prompt, origin, 'prompt');
  const answer = (key: 'chosen' | 'rejected') => {
    const v = r[key];
    if (typeof v === 'string' && v.trim() !== '') return v;
    const turns = Array.isArray(v) ? messages(v, origin, key) : [];
    const last = turns.filter((m) => m.role === 'assistant').at(-1);
    return need(last !== undefined, origin, key, 'expected a string or a chat list ending with an assistant turn', last!.content);
  };
  const { prompt: _p, chosen: _c, rejected: _r, ...rest } = r;
  return {
    id: typeof r.id === 'string' ? r.id : typeof r.prompt_id === 'string' ? r.prompt_id : `ultramedical-${origin.line}`,
    prompt,
    criteria: [],
    responses: [{ id: 'chosen', text: answer('chosen') }, { id: 'rejected', text: answer('rejected') }],
    preferences: [{ chosen: 'chosen', rejected: 'rejected' }],
    source: { format: 'ultramedical', ...rest },
  };
}

/** The importer of a line-based format (kqa-nli groups CSV rows instead; promedical is native). */
export const LINE_IMPORTERS: Partial<Record<RecordFormat, (r: Raw, origin: Origin) => RubricRecord>> = {
  healthbench: fromHealthBench,
  kqa: fromKqa,
  rar: fromRar,
  ultramedical: fromUltraMedical,
};
