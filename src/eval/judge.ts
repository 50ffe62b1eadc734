// Judge evaluation of a criteria-injected reward model on graded records: pointwise and pairwise
// accuracy per tier, Cohen's kappa with the gold grades (met / not met), safety-veto precision / recall / F1 (veto triggered = positive), and the
// lexicographic ranking accuracy of whole responses.
import { criterionPairs, gradeValue, TIERS, type RubricRecord } from '../data/schema.js';
import type { CriteriaRewardModel } from '../reward/model.js';
import { compareResponses, promedicalScores } from '../reward/scores.js';
import { accuracy, binaryScores, cohensKappa, pairwiseAccuracy } from './metrics.js';

export type JudgeMetrics = Record<string, number>;

/** Scores every graded (response, criterion) of `records` and computes the judge metrics. */
export async function evaluateJudge(rm: CriteriaRewardModel, records: RubricRecord[], batchSize = 16): Promise<JudgeMetrics> {
  const items = records.flatMap((record) =>
    record.responses.flatMap((r) => record.criteria.filter((c) => r.grades?.[c.id] !== undefined).map((c) => ({ record, responseId: r.id, criterionId: c.id }))),
  );
  const logits = await rm.scoreItems(items, batchSize);
  const logit = new Map(items.map((it, i) => [`${it.record.id}|${it.responseId}|${it.criterionId}`, logits[i]]));
  return judgeMetrics(records, (recordId, responseId, criterionId) => logit.get(`${recordId}|${responseId}|${criterionId}`));
}

/**
 * The metrics from a scoring function (logit of "criterion met"; > 0 means met). Separate from the
 * model so it can be tested on hand-made scores.
 */
export function judgeMetrics(records: RubricRecord[], logitOf: (recordId: string, responseId: string, criterionId: string) => number | undefined): JudgeMetrics {
  const out: JudgeMetrics = {};
  const pairs: Record<string, { chosen: number; rejected: number }[]> = { all: [] };
  const point: Record<string, { pred: boolean[]; gold: boolean[] }> = { all: { pred: [], gold: [] } };
  const vetoPred: boolean[] = [];
  const vetoGold: boolean[] = [];
  let rankRight = 0, rankTotal = 0;
  for (const record of records) {
    const tierOf = new Map(record.criteria.map((c) => [c.id, c.tier]));
    for (const p of criterionPairs(record)) {
      if (!p.criterion) continue;
      const chosen = logitOf(record.id, p.chosen, p.criterion);
      const rejected = logitOf(record.id, p.rejected, p.criterion);
      if (chosen === undefined || rejected === undefined) continue;
      for (const key of ['all', tierOf.get(p.criterion)!]) (pairs[key] ??= []).push({ chosen, rejected });
    }
    const predicted = new Map<string, ReturnType<typeof promedicalScores>>();
    const gold = new Map<string, ReturnType<typeof promedicalScores>>();
    for (const r of record.responses) {
      const results: { pred: number; gold: number; tier: (typeof TIERS)[number]; weight?: number }[] = [];
      for (const c of record.criteria) {
        const g = gradeValue(r.grades?.[c.id]);
        const z = logitOf(record.id, r.id, c.id);
        if (g === undefined || z === undefined) continue;
        results.push({ pred: 1 / (1 + Math.exp(-z)), gold: g, tier: c.tier, weight: c.weight });
        for (const key of ['all', c.tier]) {
          const bucket = (point[key] ??= { pred: [], gold: [] });
          bucket.pred.push(z > 0);
          bucket.gold.push(g >= 0.5);
        }
      }
      if (results.length !== record.criteria.length) continue; // whole-response metrics need every grade
      predicted.set(r.id, promedicalScores(results.map((x) => ({ tier: x.tier, weight: x.weight, met: x.pred }))));
      gold.set(r.id, promedicalScores(results.map((x) => ({ tier: x.tier, weight: x.weight, met: x.gold }))));
      if (record.criteria.some((c) => c.tier === 'safety')) {
        vetoPred.push(predicted.get(r.id)!.s3 > 0);
        vetoGold.push(gold.get(r.id)!.s3 > 0);
      }
    }
    const ids = [...gold.keys()];
    for (let i = 0; i < ids.length; i++) {
      for (let j = i + 1; j < ids.length; j++) {
        const g = compareResponses(gold.get(ids[i])!, gold.get(ids[j])!);
        if (g === 0) continue;
        rankTotal++;
        if (compareResponses(predicted.get(ids[i])!, predicted.get(ids[j])!) === g) rankRight++;
      }
    }
  }
  out.pairwise_accuracy = pairwiseAccuracy(pairs.all);
  out.pairs = pairs.all.length;
  out.pointwise_accuracy = accuracy(point.all.pred, point.all.gold);
  out.kappa = cohensKappa(point.all.pred, point.all.gold);
  for (const t of TIERS) {
    out[`pairwise_accuracy_${t}`] = pairwiseAccuracy(pairs[t] ?? []);
    out[`pointwise_accuracy_${t}`] = point[t] ? accuracy(point[t].pred, point[t].gold) : NaN;
    out[`kappa_${t}`] = point[t] ? cohensKappa(point[t].pred, point[t].gold) : NaN;
  }
  const veto = binaryScores(vetoPred, vetoGold);
  out.safety_veto_precision = veto.precision;
  out.safety_veto_recall = veto.recall;
  out.safety_veto_f1 = veto.f1;
  out.safety_veto_positives = veto.tp + veto.fn;
  out.ranking_accuracy = rankTotal > 0 ? rankRight / rankTotal : NaN;
  return out;
}
