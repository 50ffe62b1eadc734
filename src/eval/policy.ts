// Policy evaluation (ProMedical-Bench style): generate a response per held-out prompt (or take
// given ones), judge every criterion with the criteria-injected RM, and report criterion accuracy,
// S1 / S2 / S3 and safety compliance, overall and per category and specialty, with 95% bootstrap
// intervals over prompts.
import type { RubricRecord } from '../data/schema.js';
import type { ChatTokenizer } from '../data/tokenizer.js';
import { generate } from '../model/generate.js';
import type { Qwen3ForCausalLM } from '../model/qwen3.js';
import type { CriteriaRewardModel } from '../reward/model.js';
import { bootstrapMean, type Interval } from './bootstrap.js';

export interface PolicyResponse {
  recordId: string;
  category?: string;
  specialty?: string;
  text: string;
  /** Share of the record's criteria judged met. */
  accuracy: number;
  s1: number;
  s2: number;
  s3: number;
  /** No safety criterion judged violated. */
  safe: boolean;
  reward: number;
}

export interface PolicyReport {
  responses: PolicyResponse[];
  overall: Record<'overall_accuracy' | 'safety_compliance' | 's1' | 's2' | 's3' | 'reward', Interval>;
  byCategory: Record<string, Record<string, Interval>>;
  bySpecialty: Record<string, Record<string, Interval>>;
}

/** Generates one response per record with `policy` (greedy unless told otherwise). */
export async function policyResponses(policy: Qwen3ForCausalLM, tok: ChatTokenizer, records: RubricRecord[], opts: { maxNewTokens?: number; temperature?: number; topP?: number; seed?: number; batchSize?: number } = {}): Promise<string[]> {
  const out: string[] = [];
  const batch = opts.batchSize ?? 8;
  for (let i = 0; i < records.length; i += batch) {
    const chunk = records.slice(i, i + batch);
    const prompts = chunk.map((r) => tok.encodeChat(r.prompt, { addGenerationPrompt: true, enableThinking: false }));
    const ids = await generate(policy, prompts, { maxNewTokens: opts.maxNewTokens ?? 96, temperature: opts.temperature ?? 0, topP: opts.topP, seed: opts.seed ?? 0, stopTokenIds: tok.stopTokenIds });
    out.push(...ids.map((c) => tok.decode(c.filter((id) => id < tok.vocabSize), { skipSpecialTokens: true })));
  }
  return out;
}

const METRICS = ['overall_accuracy', 'safety_compliance', 's1', 's2', 's3', 'reward'] as const;

function summarise(rows: PolicyResponse[], seed: number): Record<string, Interval> {
  const pick: Record<(typeof METRICS)[number], (r: PolicyResponse) => number> = {
    overall_accuracy: (r) => r.accuracy, safety_compliance: (r) => (r.safe ? 1 : 0), s1: (r) => r.s1, s2: (r) => r.s2, s3: (r) => r.s3, reward: (r) => r.reward,
  };
  return Object.fromEntries(METRICS.map((m) => [m, bootstrapMean(rows.map(pick[m]), { seed })]));
}

/** Judges `responses[i]` (one per record) with the RM and summarises with bootstrap intervals. */
export async function evaluatePolicyResponses(rm: CriteriaRewardModel, records: RubricRecord[], responses: string[], seed = 0): Promise<PolicyReport> {
  if (responses.length !== records.length) throw new Error(`evaluatePolicyResponses: ${responses.length} responses for ${records.length} records`);
  const rows: PolicyResponse[] = [];
  for (const [i, record] of records.entries()) {
    if (record.criteria.length === 0) throw new Error(`record ${record.id} has no criteria to judge against`);
    const [scored] = await rm.scoreResponses(record.prompt, [responses[i]], record.criteria);
    rows.push({
      recordId: record.id, category: record.category, specialty: record.specialty, text: responses[i],
      accuracy: scored.probabilities.filter((p) => p >= 0.5).length / record.criteria.length,
      ...scored.scores, safe: scored.scores.s3 === 0, reward: scored.reward,
    });
  }
  const group = (key: 'category' | 'specialty') => {
    const out: Record<string, Record<string, Interval>> = {};
    for (const name of new Set(rows.map((r) => r[key] ?? 'unknown'))) out[name] = summarise(rows.filter((r) => (r[key] ?? 'unknown') === name), seed);
    return out;
  };
  return { responses: rows, overall: summarise(rows, seed) as PolicyReport['overall'], byCategory: group('category'), bySpecialty: group('specialty') };
}
