// Reward functions for GRPO: the criteria-injected reward model (ProMedical's reward, whole or as
// its three tier terms) and DAPO's soft overlong penalty.
import type { RubricRecord } from '../data/schema.js';
import type { CriteriaRewardModel, ScoredResponse } from '../reward/model.js';
import type { RewardWeights, TierScores } from '../reward/scores.js';
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
    score: (prompts: GrpoPrompt[], completions: string[]) => scoreByPrompt(rm, prompts, completions, weights, (r) => r.reward),
  };
}

/**
 * ProMedical's reward as three reward functions, `<name>_s1`, `<name>_s2` and `<name>_s3`: each
 * completion's S1, S2 and S3 from one RM pass (shared by the three), weighted 1, alpha and
 * -lambda. Their weighted sum S1 + alpha S2 - lambda S3 is rubricReward's reward wherever the clip
 * to [0, 1 + beta] does not bind, which holds for every S1, S2 in [0, 1] when alpha <= beta (the
 * defaults: 0.1 <= 0.5). Apart, they can be normalised one by one (normalize_then_sum, GDPO).
 */
export function rubricRewardTerms(rm: CriteriaRewardModel, weights: RewardWeights = {}, name = 'promedical'): RewardFunction[] {
  const alpha = weights.alpha ?? 0.1;
  const lambda = weights.lambda ?? 1.5;
  // One RM pass per batch of completions: the first of the three to ask scores, the others reuse it.
  const passes = new WeakMap<string[], Promise<TierScores[]>>();
  const scores = (prompts: GrpoPrompt[], completions: string[]) => {
    let pass = passes.get(completions);
    if (!pass) {
      pass = scoreByPrompt(rm, prompts, completions, weights, (r) => r.scores);
      passes.set(completions, pass);
    }
    return pass;
  };
  const term = (key: 's1' | 's2' | 's3', weight: number): RewardFunction => ({
    name: `${name}_${key}`,
    weight,
    score: async (prompts, completions) => (await scores(prompts, completions)).map((s) => s[key]),
  });
  return [term('s1', 1), term('s2', alpha), term('s3', -lambda)];
}

/** Each completion scored against its prompt's criteria (prompt.context: the RubricRecord), the
 * completions of one prompt in one RM batch. */
async function scoreByPrompt<T>(rm: CriteriaRewardModel, prompts: GrpoPrompt[], completions: string[], weights: RewardWeights, pick: (r: ScoredResponse) => T): Promise<T[]> {
  const out = new Array<T>(completions.length);
  const byPrompt = new Map<GrpoPrompt, number[]>();
  prompts.forEach((p, i) => byPrompt.set(p, [...(byPrompt.get(p) ?? []), i]));
  for (const [p, idx] of byPrompt) {
    const record = p.context as RubricRecord | undefined;
    if (!record || !Array.isArray(record.criteria) || record.criteria.length === 0) {
      throw new Error(`rubricReward: prompt ${p.id} has no rubric criteria to score against`);
    }
    const scored = await rm.scoreResponses(record.prompt, idx.map((i) => completions[i]), record.criteria, weights);
    idx.forEach((i, k) => (out[i] = pick(scored[k])));
  }
  return out;
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
