// Group-relative advantages (DeepSeekMath's GRPO, with TRL's options): each completion's reward
// is compared with the other completions of the same prompt.

export interface AdvantageOptions {
  /** 'group' divides by the group's std (N - 1), 'batch' by the whole batch's std (mean still per
   * group), 'none' does not divide (Dr. GRPO). Default 'group'. */
  scale?: 'group' | 'batch' | 'none';
  /** Added to the std (default 1e-4). */
  epsilon?: number;
}

function std(values: number[]): number {
  if (values.length < 2) return 0;
  const mean = values.reduce((a, v) => a + v, 0) / values.length;
  return Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1));
}

// docs/formulas.md, "Group-relative advantages"
/**
 * A_i = (R_i - mean of its group) / (std + epsilon) for rewards laid out group after group (groupSize
 * consecutive completions per prompt). A NaN reward counts as 0 in the statistics and gets A = 0
 * (a completion no reward function could score carries no signal).
 */
export function groupAdvantages(rewards: ArrayLike<number>, groupSize: number, opts: AdvantageOptions = {}): Float32Array {
  const n = rewards.length;
  if (!(Number.isInteger(groupSize) && groupSize > 0) || n % groupSize !== 0) {
    throw new Error(`groupAdvantages: ${n} rewards do not split into groups of ${groupSize}`);
  }
  const scale = opts.scale ?? 'group';
  const eps = opts.epsilon ?? 1e-4;
  const r = Array.from(rewards, (v) => (Number.isNaN(v) ? 0 : v));
  const batchStd = std(r);
  const out = new Float32Array(n);
  for (let g = 0; g < n; g += groupSize) {
    const group = r.slice(g, g + groupSize);
    const mean = group.reduce((a, v) => a + v, 0) / groupSize;
    const denom = scale === 'none' ? 1 : (scale === 'batch' ? batchStd : std(group)) + eps;
    for (let i = 0; i < groupSize; i++) out[g + i] = Number.isNaN(rewards[g + i]) ? 0 : (group[i] - mean) / denom;
  }
  return out;
}

/** Share of groups whose rewards are all equal (no learning signal): TRL's frac_reward_zero_std. */
export function fracZeroStd(rewards: ArrayLike<number>, groupSize: number): number {
  let zero = 0;
  for (let g = 0; g < rewards.length; g += groupSize) {
    if (std(Array.from({ length: groupSize }, (_, i) => rewards[g + i])) === 0) zero++;
  }
  return zero / (rewards.length / groupSize);
}

/**
 * Rewards of several reward functions combined per completion: sum_k w_k r_ik, NaN counting as 0;
 * a completion whose rewards are all NaN stays NaN (so groupAdvantages gives it A = 0).
 */
export function combineRewards(perFunction: ArrayLike<number>[], weights?: number[]): Float32Array {
  if (perFunction.length === 0) throw new Error('combineRewards: no reward functions');
  const n = perFunction[0].length;
  const w = weights ?? perFunction.map(() => 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    let any = false;
    perFunction.forEach((f, k) => {
      if (!Number.isNaN(f[i])) {
        sum += w[k] * f[i];
        any = true;
      }
    });
    out[i] = any ? sum : NaN;
  }
  return out;
}
