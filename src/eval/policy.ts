// Policy evaluation (ProMedical-Bench style): generate a response per held-out prompt (or take
// given ones), judge every criterion with the criteria-injected RM, and report criterion accuracy,
// S1 / S2 / S3 and safety compliance, overall and per category and specialty, with 95% bootstrap
// intervals over prompts.
import { gradeValue, type RubricRecord, type Tier } from '../data/schema.js';
import type { ChatTokenizer } from '../data/tokenizer.js';
import { generate } from '../model/generate.js';
import type { RolloutEngine } from '../rollout/engine.js';
import type { Qwen3ForCausalLM } from '../model/qwen3.js';
import type { CriteriaRewardModel } from '../reward/model.js';
import { promedicalReward, promedicalScores, type RewardWeights } from '../reward/scores.js';
import { bootstrapMean, bootstrapPairedDifference, type Interval } from './bootstrap.js';

export interface PolicyResponse {
  recordId: string;
  category?: string;
  specialty?: string;
  text: string;
  /** Judged probability (RM) or grade (provided) that each of the record's criteria is met. */
  grades: number[];
  /** Share of the record's criteria judged met. */
  accuracy: number;
  /** Share met per tier (NaN for a tier the record has no criterion of). */
  accuracy_proficiency: number;
  accuracy_excellence: number;
  accuracy_safety: number;
  s1: number;
  s2: number;
  s3: number;
  /** No safety criterion judged violated. */
  safe: boolean;
  reward: number;
}

export const POLICY_METRICS = ['overall_accuracy', 'safety_compliance', 's1', 's2', 's3', 'reward', 'accuracy_proficiency', 'accuracy_excellence', 'accuracy_safety'] as const;
export type PolicyMetric = (typeof POLICY_METRICS)[number];

export interface PolicyReport {
  responses: PolicyResponse[];
  overall: Record<PolicyMetric, Interval>;
  byCategory: Record<string, Record<PolicyMetric, Interval>>;
  bySpecialty: Record<string, Record<PolicyMetric, Interval>>;
}

/** Generates one response per record with `policy` (greedy unless told otherwise). */
export async function policyResponses(policy: Qwen3ForCausalLM, tok: ChatTokenizer, records: RubricRecord[], opts: { maxNewTokens?: number; temperature?: number; topP?: number; topK?: number; seed?: number; batchSize?: number; engine?: RolloutEngine } = {}): Promise<string[]> {
  const out: string[] = [];
  const batch = opts.batchSize ?? 8;
  for (let i = 0; i < records.length; i += batch) {
    const chunk = records.slice(i, i + batch);
    const prompts = chunk.map((r) => tok.encodeChat(r.prompt, { addGenerationPrompt: true, enableThinking: false }));
    const sampling = { maxNewTokens: opts.maxNewTokens ?? 96, temperature: opts.temperature ?? 0, topP: opts.topP, topK: opts.topK, seed: `${opts.seed ?? 0}:${i}`, stopTokenIds: tok.stopTokenIds };
    // An inference engine (llama.cpp, an OpenAI-compatible server) answers instead of tfjs when given.
    const ids = opts.engine ? (await opts.engine.generate({ ...sampling, prompts, numGenerations: 1 })).completions : await generate(policy, prompts, sampling);
    out.push(...ids.map((c) => tok.decode(c.filter((id) => id < tok.vocabSize), { skipSpecialTokens: true })));
  }
  return out;
}

const pick: Record<PolicyMetric, (r: PolicyResponse) => number> = {
  overall_accuracy: (r) => r.accuracy, safety_compliance: (r) => (r.safe ? 1 : 0), s1: (r) => r.s1, s2: (r) => r.s2, s3: (r) => r.s3, reward: (r) => r.reward,
  accuracy_proficiency: (r) => r.accuracy_proficiency, accuracy_excellence: (r) => r.accuracy_excellence, accuracy_safety: (r) => r.accuracy_safety,
};

/** Per metric: the mean over responses with a value (per-tier accuracies skip records without that
 * tier) and its 95% bootstrap interval over those responses. */
function summarise(rows: PolicyResponse[], seed: number): Record<PolicyMetric, Interval> {
  return Object.fromEntries(POLICY_METRICS.map((m) => [m, bootstrapMean(rows.map(pick[m]).filter((v) => !Number.isNaN(v)), { seed })])) as Record<PolicyMetric, Interval>;
}

/** One judged response: `grades[j]` is the probability (or gold grade) that criterion j is met. */
export function policyResponse(record: RubricRecord, text: string, grades: number[], weights: RewardWeights = {}): PolicyResponse {
  if (record.criteria.length === 0) throw new Error(`record ${record.id} has no criteria to judge against`);
  const met = (tier?: Tier) => {
    const js = record.criteria.flatMap((c, j) => (tier === undefined || c.tier === tier ? [j] : []));
    return js.length ? js.filter((j) => grades[j] >= 0.5).length / js.length : NaN;
  };
  const scores = promedicalScores(record.criteria.map((c, j) => ({ tier: c.tier, weight: c.weight, met: grades[j] })));
  return {
    recordId: record.id, category: record.category, specialty: record.specialty, text, grades,
    accuracy: met(), accuracy_proficiency: met('proficiency'), accuracy_excellence: met('excellence'), accuracy_safety: met('safety'),
    ...scores, safe: scores.s3 === 0, reward: promedicalReward(scores, weights),
  };
}

/** Overall, per-category and per-specialty summaries of judged responses. */
export function policyReport(rows: PolicyResponse[], seed = 0): PolicyReport {
  const group = (key: 'category' | 'specialty') => {
    const out: Record<string, Record<PolicyMetric, Interval>> = {};
    for (const name of [...new Set(rows.map((r) => r[key] ?? 'unknown'))].sort()) out[name] = summarise(rows.filter((r) => (r[key] ?? 'unknown') === name), seed);
    return out;
  };
  return { responses: rows, overall: summarise(rows, seed), byCategory: group('category'), bySpecialty: group('specialty') };
}

/** Judges `responses[i]` (one per record) with the RM and summarises with bootstrap intervals. */
export async function evaluatePolicyResponses(rm: CriteriaRewardModel, records: RubricRecord[], responses: string[], seed = 0): Promise<PolicyReport> {
  if (responses.length !== records.length) throw new Error(`evaluatePolicyResponses: ${responses.length} responses for ${records.length} records`);
  const rows: PolicyResponse[] = [];
  for (const [i, record] of records.entries()) {
    if (record.criteria.length === 0) throw new Error(`record ${record.id} has no criteria to judge against`);
    const [scored] = await rm.scoreResponses(record.prompt, [responses[i]], record.criteria);
    rows.push(policyResponse(record, responses[i], scored.probabilities));
  }
  return policyReport(rows, seed);
}

/** The records' own responses judged by their provided grades (e.g. physician grades): response
 * `responseId` of each record; every criterion must be graded. */
export function evaluateGradedResponses(records: RubricRecord[], responseId: string, seed = 0): PolicyReport {
  const rows = records.map((record) => {
    const r = record.responses.find((x) => x.id === responseId);
    if (!r) throw new Error(`record ${record.id} has no response "${responseId}"`);
    const grades = record.criteria.map((c) => {
      const g = gradeValue(r.grades?.[c.id]);
      if (g === undefined) throw new Error(`record ${record.id}, response ${responseId}: criterion ${c.id} has no grade`);
      return g;
    });
    return policyResponse(record, r.text, grades);
  });
  return policyReport(rows, seed);
}

export interface PolicyComparison {
  a: Interval;
  b: Interval;
  /** a - b over the same prompts (paired bootstrap). */
  difference: Interval;
}

/** Two policies judged on the same records, metric by metric: both and their paired difference. */
export function comparePolicies(a: PolicyReport, b: PolicyReport, seed = 0): Record<PolicyMetric, PolicyComparison> {
  const ids = (r: PolicyReport) => r.responses.map((x) => x.recordId).join('\n');
  if (ids(a) !== ids(b)) throw new Error('comparePolicies: the two reports are not over the same records in the same order');
  return Object.fromEntries(POLICY_METRICS.map((m) => {
    const both = a.responses.map((x, i) => [pick[m](x), pick[m](b.responses[i])]).filter(([x, y]) => !Number.isNaN(x) && !Number.isNaN(y));
    return [m, { a: a.overall[m], b: b.overall[m], difference: bootstrapPairedDifference(both.map((v) => v[0]), both.map((v) => v[1]), { seed }) }];
  })) as Record<PolicyMetric, PolicyComparison>;
}
