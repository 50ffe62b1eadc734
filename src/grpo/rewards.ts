// Reward functions for GRPO: the criteria-injected reward model (ProMedical's reward) and DAPO's
// soft overlong penalty.
import type { RubricRecord } from '../data/schema.js';
import type { CriteriaRewardModel } from '../reward/model.js';
import type { RewardWeights } from '../reward/scores.js';
import type { GrpoPrompt, RewardFunction } from './trainer.js';

/**
 * ProMedical's reward from a trained criteria-injected RM: each completion is scored against its
 * prompt's criteria (prompt.context must be the RubricRecord) and gets
 * clip(S1 + alpha S2, 0, 1 + beta) - lambda S3. A prompt without criteria is an error, not a
 * zero reward.
 */
export function rubricReward(rm: CriteriaRewardModel, weights: RewardWeights = {}, name = 'promedical_rm'): RewardFunction {
  return {
    name,
    async score(prompts: GrpoPrompt[], completions: string[]): Promise<number[]> {
      const out = new Array<number>(completions.length).fill(NaN);
      // Completions of one prompt are scored together (one batch of criteria x responses).
      const byPrompt = new Map<GrpoPrompt, number[]>();
      prompts.forEach((p, i) => byPrompt.set(p, [...(byPrompt.get(p) ?? []), i]));
      for (const [p, idx] of byPrompt) {
        const record = p.context as RubricRecord | undefined;
        if (!record || !Array.isArray(record.criteria) || record.criteria.length === 0) {
          throw new Error(`rubricReward: prompt ${p.id} has no rubric criteria to score against`);
        }
        const scored = await rm.scoreResponses(record.prompt, idx.map((i) => completions[i]), record.criteria, weights);
        idx.forEach((i, k) => (out[i] = scored[k].reward));
      }
      return out;
    },
  };
}

/**
 * DAPO's soft overlong penalty on completion length (in tokens): 0 up to maxLength - cache, then
 * falling linearly to -1 at maxLength, and -1 beyond.
 */
export function overlongPenalty(maxLength: number, cache: number, name = 'overlong_penalty'): RewardFunction {
  if (!(cache > 0 && cache < maxLength)) throw new Error(`overlongPenalty: need 0 < cache (${cache}) < maxLength (${maxLength})`);
  return {
    name,
    async score(_p: GrpoPrompt[], _t: string[], ids: number[][]): Promise<number[]> {
      return ids.map((c) => {
        const len = c.length;
        if (len <= maxLength - cache) return 0;
        if (len <= maxLength) return (maxLength - cache - len) / cache;
        return -1;
      });
    },
  };
}
