// Group-relative advantages: the check values in docs/formulas.md (TRL semantics), and TRL 1.10's
// reward aggregation with NaN rewards against a float64 PyTorch implementation
// (test/reference/grpo_reference.py -> test/fixtures/grpo.json): sum_then_normalize and
// normalize_then_sum (GDPO) under each scale, a function missing on some completions, a completion
// no function scored, a group with one finite reward, G = 1; zeroStdGroups; the refusals.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { combineRewards, fracZeroStd, groupAdvantages, rewardAdvantages, zeroStdGroups } from '../../src/grpo/advantages.js';
import { klEstimate } from '../../src/grpo/loss.js';
import { useBackend } from '../helpers/backends.js';

const fx = JSON.parse(fs.readFileSync(new URL('../fixtures/grpo.json', import.meta.url), 'utf8'));
test.before(() => useBackend('wasm'));
const near = (got: ArrayLike<number>, want: number[], tol = 1e-5) => got.length === want.length && want.every((w, i) => Math.abs(got[i] - w) <= tol * Math.max(1, Math.abs(w)));
const nan = (xs: (number | null)[]) => xs.map((v) => (v === null ? NaN : v));

test('check values: rewards [1,0,0,1 | .5 x4], G = 4, under each scale', () => {
  const r = [1, 0, 0, 1, 0.5, 0.5, 0.5, 0.5];
  const a = 0.865875, b = 1.322526;
  assert.ok(near(groupAdvantages(r, 4), [a, -a, -a, a, 0, 0, 0, 0]));
  assert.ok(near(groupAdvantages(r, 4, { scale: 'none' }), [0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0]));
  assert.ok(near(groupAdvantages(r, 4, { scale: 'batch' }), [b, -b, -b, b, 0, 0, 0, 0]));
  assert.is(fracZeroStd(r, 4), 0.5);
  assert.equal(zeroStdGroups(r, 4), [false, true]);
  assert.throws(() => groupAdvantages(r, 3), /groupAdvantages: 8 rewards do not split into groups of 3/);
});

test('every reward-aggregation case of the reference: advantages, combined rewards, zero-std groups', () => {
  for (const c of fx.reward_advantages.cases) {
    const perFn = c.rewards_per_func.map(nan);
    const got = rewardAdvantages(perFn, c.num_generations, { weights: c.weights, aggregation: c.aggregation, scale: c.scale_rewards });
    assert.ok(near(got, c.advantages), `${c.name}: ${Array.from(got)} vs ${c.advantages}`);
    assert.ok(got.every(Number.isFinite), c.name);
    const combined = combineRewards(perFn, c.weights);
    const want = nan(c.combined_rewards);
    want.forEach((v, i) => assert.ok(Number.isNaN(v) ? Number.isNaN(combined[i]) : Math.abs(combined[i] - v) < 1e-5, `${c.name}: combined[${i}]`));
    assert.equal(zeroStdGroups(combined, c.num_generations), c.zero_std_groups, c.name);
    assert.ok(Math.abs(fracZeroStd(combined, c.num_generations) - c.frac_zero_std) < 1e-12, c.name);
    if (perFn.length === 1) {
      assert.ok(near(groupAdvantages(perFn[0], c.num_generations, { scale: c.scale_rewards }), c.advantages), `${c.name} (groupAdvantages)`);
    }
  }
});

test('the reference covers both aggregations x three scales, G = 1 and the NaN situations', () => {
  const cases = fx.reward_advantages.cases;
  for (const agg of ['sum_then_normalize', 'normalize_then_sum']) {
    for (const scale of ['group', 'batch', 'none']) assert.ok(cases.some((c: any) => c.aggregation === agg && c.scale_rewards === scale && c.num_generations > 1), `${agg} ${scale}`);
  }
  assert.ok(cases.some((c: any) => c.num_generations === 1));
  const multi = cases.find((c: any) => c.name === 'multi_sum_then_normalize_group');
  const rpf: (number | null)[][] = multi.rewards_per_func;
  const N = rpf[0].length, G = multi.num_generations;
  const unscored = Array.from({ length: N }, (_, i) => rpf.every((f) => f[i] === null));
  assert.ok(unscored.some(Boolean), 'a completion no function scored');
  assert.ok(rpf.some((f) => f.some((v) => v === null) && f.some((v) => v !== null)), 'a function missing on some completions');
  const finite = Array.from({ length: N / G }, (_, g) => multi.combined_rewards.slice(g * G, (g + 1) * G).filter((v: number | null) => v !== null).length);
  assert.ok(finite.includes(1), 'a group with one finite reward');
  unscored.forEach((u, i) => u && assert.is(multi.advantages[i], 0));
});

test('NaN rewards stay out of the statistics; a lone finite reward or an unscored completion gets A = 0', () => {
  // Group [1, NaN, 0, 1]: mean 2/3 and std (N - 1) of {1, 0, 1} only.
  const mean = 2 / 3, sd = Math.sqrt(((1 - mean) ** 2 * 2 + mean ** 2) / 2);
  const a = groupAdvantages([1, NaN, 0, 1, NaN, 2, NaN, NaN], 4);
  assert.ok(near(a, [(1 - mean) / (sd + 1e-4), 0, -mean / (sd + 1e-4), (1 - mean) / (sd + 1e-4), 0, 0, 0, 0]));
  assert.ok(near(a, [0.57725, 0, -1.1545, 0.57725, 0, 0, 0, 0])); // docs/formulas.md's check values
  // scale 'none' keeps R - mean; the lone finite reward is its own mean.
  assert.ok(near(groupAdvantages([1, NaN, 0, 1, NaN, 2, NaN, NaN], 4, { scale: 'none' }), [1 - mean, 0, -mean, 1 - mean, 0, 0, 0, 0]));
  assert.equal(zeroStdGroups([1, NaN, 0, 1, NaN, 2, NaN, NaN], 4), [false, true]);
  assert.equal(zeroStdGroups([NaN, NaN, 3, 3 + 1e-9], 2), [true, true]);
  // Several functions: weighted nansum, an all-NaN completion stays NaN in combineRewards.
  const combined = combineRewards([[1, NaN, 0.5, NaN], [0, 2, NaN, NaN]], [1, 0.5]);
  assert.equal(Array.from(combined.slice(0, 3)), [1, 1, 0.5]);
  assert.ok(Number.isNaN(combined[3]));
  const perFn = [[1, NaN, 0.5, NaN], [0, 2, NaN, NaN]];
  assert.equal(Array.from(rewardAdvantages(perFn, 4, { weights: [1, 0.5] })), Array.from(groupAdvantages(combined, 4)));
  assert.is(rewardAdvantages(perFn, 4, { weights: [1, 0.5] })[3], 0);
});

test('normalize_then_sum (GDPO) by hand, and scale does not change it (as in TRL)', () => {
  // Two functions, one group of 2 and one of 2: z-scores per function and group, then a batch z-score.
  const f0 = [0, 2, 1, 1], f1 = [1, 0, 5, 3];
  const z = (x: number, m: number, s: number) => (x - m) / (s + 1e-4);
  const s = Math.SQRT2; // std (N - 1) of {0, 2}, {5, 3}; {1, 1} has std 0
  const r = [z(0, 1, s) + z(1, 0.5, Math.SQRT1_2), z(2, 1, s) + z(0, 0.5, Math.SQRT1_2), 0 + z(5, 4, s), 0 + z(3, 4, s)];
  const mean = r.reduce((a, v) => a + v, 0) / 4;
  const sd = Math.sqrt(r.reduce((a, v) => a + (v - mean) ** 2, 0) / 3);
  const want = r.map((v) => (v - mean) / (sd + 1e-4));
  for (const scale of ['group', 'batch', 'none'] as const) assert.ok(near(rewardAdvantages([f0, f1], 2, { aggregation: 'normalize_then_sum', scale }), want), scale);
});

test('refusals name the argument', () => {
  assert.throws(() => rewardAdvantages([], 2), /rewardAdvantages: rewardsPerFunction needs one array per reward function/);
  assert.throws(() => rewardAdvantages([[1, 2], [1, 2, 3]], 2), /rewardsPerFunction\[1\] has 3 rewards, rewardsPerFunction\[0\] has 2/);
  assert.throws(() => rewardAdvantages([[1, 2], [3, 4]], 2, { weights: [1] }), /weights has 1 entries for 2 reward functions/);
  assert.throws(() => rewardAdvantages([[1, 2, 3]], 2), /3 rewards do not split into groups of 2 \(groupSize/);
  assert.throws(() => rewardAdvantages([[1, 2]], 0), /do not split into groups of 0 \(groupSize/);
  assert.throws(() => rewardAdvantages([[1, 2]], 2, { aggregation: 'sum' as 'sum_then_normalize' }), /unknown aggregation "sum"; expected one of sum_then_normalize, normalize_then_sum/);
  assert.throws(() => rewardAdvantages([[1, 2]], 2, { scale: 'std' as 'group' }), /unknown scale "std"; expected one of group, batch, none/);
  assert.throws(() => groupAdvantages([1, 2], 2, { scale: 'std' as 'group' }), /groupAdvantages: unknown scale "std"/);
  assert.throws(() => zeroStdGroups([1, 2, 3], 2), /zeroStdGroups: 3 rewards do not split into groups of 2/);
  assert.throws(() => combineRewards([[1], [2]], [1]), /combineRewards: weights has 1 entries for 2 reward functions/);
});

test('KL estimators: check values logp -1, ref -1.5 -> k1 0.5, k2 0.125, k3 0.106531', () => {
  const lp = tf.tensor1d([-1]), ref = tf.tensor1d([-1.5]);
  assert.ok(near(klEstimate(lp, ref, 'k1').dataSync(), [0.5]));
  assert.ok(near(klEstimate(lp, ref, 'k2').dataSync(), [0.125]));
  assert.ok(near(klEstimate(lp, ref, 'k3').dataSync(), [0.106531]));
});

test.run();
