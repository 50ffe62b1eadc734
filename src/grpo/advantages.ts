// Group-relative advantages (DeepSeekMath's GRPO, with TRL 1.10's options): each completion's
// reward is compared with the other completions of the same prompt. Several reward functions are
// summed then normalised (TRL's default) or normalised then summed (GDPO). NaN is a reward function
// that did not score a completion (TRL's None): it stays out of every mean and standard deviation.

export type RewardScale = 'group' | 'batch' | 'none';
export type RewardAggregation = 'sum_then_normalize' | 'normalize_then_sum';

export interface AdvantageOptions {
  /** 'group' divides by the group's std (N - 1), 'batch' by the whole batch's std (mean still per
   * group), 'none' does not divide (Dr. GRPO). Default 'group'. */
  scale?: RewardScale;
  /** Added to the std (default 1e-4). */
  epsilon?: number;
}

export interface RewardAdvantageOptions extends AdvantageOptions {
  /** One weight per reward function (default 1 each). */
  weights?: number[];
  /** Default 'sum_then_normalize' (TRL's multi_objective_aggregation). 'normalize_then_sum' ignores
   * `scale`, as TRL does: it always ends with a batch z-score. */
  aggregation?: RewardAggregation;
}

const SCALES: readonly RewardScale[] = ['group', 'batch', 'none'];
const AGGREGATIONS: readonly RewardAggregation[] = ['sum_then_normalize', 'normalize_then_sum'];

/** Mean of the non-NaN values (NaN when there are none): torch.nanmean. */
export function nanmean(xs: ArrayLike<number>): number {
  let s = 0, n = 0;
  for (const x of Array.from(xs)) if (!Number.isNaN(x)) (s += x), n++;
  return n ? s / n : NaN;
}

// docs/formulas.md, "Group-relative advantages"
/** Standard deviation of the non-NaN values with Bessel's correction; NaN for fewer than 2 (TRL's nanstd). */
export function nanstd(xs: ArrayLike<number>): number {
  const mean = nanmean(xs);
  let s = 0, n = 0;
  for (const x of Array.from(xs)) if (!Number.isNaN(x)) (s += (x - mean) ** 2), n++;
  return n > 1 ? Math.sqrt((s / n) * (n / (n - 1))) : NaN;
}

/** Sum of the non-NaN values (0 when there are none): torch.nansum. */
function nansum(xs: number[]): number {
  return xs.reduce((a, x) => (Number.isNaN(x) ? a : a + x), 0);
}

const FLOAT32_MAX = 3.4028234663852886e38;
/** torch.nan_to_num on float32: NaN -> 0, +-inf -> +-the largest float32. */
const nanToNum = (x: number) => (Number.isNaN(x) ? 0 : x === Infinity ? FLOAT32_MAX : x === -Infinity ? -FLOAT32_MAX : x);

function checkGroups(who: string, n: number, groupSize: number): void {
  if (!(Number.isInteger(groupSize) && groupSize > 0) || n % groupSize !== 0) {
    throw new Error(`${who}: ${n} rewards do not split into groups of ${groupSize} (groupSize must be a positive integer dividing the count)`);
  }
}

function advantagesOf(who: string, perFunction: ArrayLike<number>[], groupSize: number, opts: RewardAdvantageOptions): Float32Array {
  if (!Array.isArray(perFunction) || perFunction.length === 0) throw new Error(`${who}: rewardsPerFunction needs one array per reward function, got none`);
  const K = perFunction.length;
  const n = perFunction[0].length;
  perFunction.forEach((f, k) => {
    if (f.length !== n) throw new Error(`${who}: rewardsPerFunction[${k}] has ${f.length} rewards, rewardsPerFunction[0] has ${n}`);
  });
  checkGroups(who, n, groupSize);
  const w = opts.weights ?? perFunction.map(() => 1);
  if (w.length !== K) throw new Error(`${who}: weights has ${w.length} entries for ${K} reward functions`);
  const scale = opts.scale ?? 'group';
  if (!SCALES.includes(scale)) throw new Error(`${who}: unknown scale "${String(scale)}"; expected one of ${SCALES.join(', ')}`);
  const aggregation = opts.aggregation ?? 'sum_then_normalize';
  if (!AGGREGATIONS.includes(aggregation)) throw new Error(`${who}: unknown aggregation "${String(aggregation)}"; expected one of ${AGGREGATIONS.join(', ')}`);
  const eps = opts.epsilon ?? 1e-4;
  const G = groupSize;
  const groups = n / G;
  const unscorable = Array.from({ length: n }, (_, i) => perFunction.every((f) => Number.isNaN(f[i])));
  const adv = new Array<number>(n);

  if (aggregation === 'sum_then_normalize') {
    const r = Array.from({ length: n }, (_, i) => (unscorable[i] ? NaN : nansum(perFunction.map((f, k) => w[k] * f[i]))));
    const batchStd = n > 1 ? nanstd(r) : 0;
    for (let g = 0; g < groups; g++) {
      const group = r.slice(g * G, (g + 1) * G);
      const mean = nanmean(group);
      const std = scale === 'batch' ? batchStd : G > 1 ? nanstd(group) : 0;
      for (let i = 0; i < G; i++) {
        const d = group[i] - mean;
        adv[g * G + i] = scale === 'none' ? d : d / (std + eps);
      }
    }
  } else {
    // GDPO: a z-score per function and group, their weighted nansum, then a batch z-score.
    const z = Array.from({ length: n }, () => new Array<number>(K));
    for (let k = 0; k < K; k++) {
      for (let g = 0; g < groups; g++) {
        const group = Array.from({ length: G }, (_, i) => perFunction[k][g * G + i]);
        const mean = nanmean(group);
        const std = G > 1 ? nanstd(group) : 0;
        for (let i = 0; i < G; i++) z[g * G + i][k] = (group[i] - mean) / (std + eps);
      }
    }
    const r = z.map((zi, i) => (unscorable[i] ? NaN : nansum(zi.map((v, k) => w[k] * v))));
    const std = n > 1 ? nanstd(r) : 0;
    const mean = nanmean(r);
    for (let i = 0; i < n; i++) adv[i] = (r[i] - mean) / (std + eps);
  }
  return Float32Array.from(adv, nanToNum);
}

// docs/formulas.md, "Several reward functions" and "Group-relative advantages"
/**
 * TRL's advantages from several reward functions: `rewardsPerFunction[k][i]` is function k's reward
 * of completion i (NaN where it did not score it), completions laid out group after group
 * (groupSize consecutive completions per prompt). sum_then_normalize: A = (R - nanmean_group R) /
 * (nanstd + epsilon) with R = nansum_k w_k r_k; normalize_then_sum: per function group z-scores,
 * their weighted nansum, then a batch z-score. A NaN advantage (a completion no function scored, a
 * group with one finite reward) becomes 0.
 */
export function rewardAdvantages(rewardsPerFunction: ArrayLike<number>[], groupSize: number, opts: RewardAdvantageOptions = {}): Float32Array {
  return advantagesOf('rewardAdvantages', rewardsPerFunction, groupSize, opts);
}

/**
 * A_i = (R_i - mean of its group) / (std + epsilon) for rewards laid out group after group
 * (groupSize consecutive completions per prompt): rewardAdvantages with one reward function. A NaN
 * reward stays out of the group's mean and std and gets A = 0; a group with fewer than 2 finite
 * rewards has std NaN, so its advantages are 0 too (scale 'none' keeps R - mean for 2 or more).
 */
export function groupAdvantages(rewards: ArrayLike<number>, groupSize: number, opts: AdvantageOptions = {}): Float32Array {
  return advantagesOf('groupAdvantages', [rewards], groupSize, { scale: opts.scale, epsilon: opts.epsilon });
}

/**
 * One flag per group: true when the group's finite rewards carry no learning signal, their nanstd
 * being 0 within torch.isclose's default tolerance (|std| <= 1e-8), or fewer than 2 of them finite.
 */
export function zeroStdGroups(rewards: ArrayLike<number>, groupSize: number): boolean[] {
  checkGroups('zeroStdGroups', rewards.length, groupSize);
  return Array.from({ length: rewards.length / groupSize }, (_, g) => {
    const std = nanstd(Array.from({ length: groupSize }, (_, i) => rewards[g * groupSize + i]));
    return Number.isNaN(std) || Math.abs(std) <= 1e-8;
  });
}

/** Share of groups without learning signal (zeroStdGroups): TRL's frac_reward_zero_std. */
export function fracZeroStd(rewards: ArrayLike<number>, groupSize: number): number {
  const flags = zeroStdGroups(rewards, groupSize);
  return flags.filter(Boolean).length / flags.length;
}

/**
 * The summed reward TRL logs as `reward` / `reward_std`: R_i = Σ_k w_k r_ik over the functions whose
 * reward is not NaN; a completion whose rewards are all NaN stays NaN (and gets A = 0).
 */
export function combineRewards(perFunction: ArrayLike<number>[], weights?: number[]): Float32Array {
  if (perFunction.length === 0) throw new Error('combineRewards: no reward functions');
  const n = perFunction[0].length;
  const w = weights ?? perFunction.map(() => 1);
  if (w.length !== perFunction.length) throw new Error(`combineRewards: weights has ${w.length} entries for ${perFunction.length} reward functions`);
  perFunction.forEach((f, k) => {
    if (f.length !== n) throw new Error(`combineRewards: perFunction[${k}] has ${f.length} rewards, perFunction[0] has ${n}`);
  });
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = perFunction.map((f, k) => w[k] * f[i]);
    out[i] = perFunction.every((f) => Number.isNaN(f[i])) ? NaN : nansum(r);
  }
  return out;
}
