// Group-relative advantages and KL estimators against the check values in docs/formulas.md (TRL semantics).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as tf from '@tensorflow/tfjs';
import { combineRewards, fracZeroStd, groupAdvantages } from '../../src/grpo/advantages.js';
import { klEstimate } from '../../src/grpo/loss.js';
import { useBackend } from '../helpers/backends.js';

test.before(() => useBackend('wasm'));
const near = (got: ArrayLike<number>, want: number[], tol = 1e-5) => want.every((w, i) => Math.abs(got[i] - w) <= tol);

test('check values: rewards [1,0,0,1 | .5 x4], G = 4, under each scale', () => {
  const r = [1, 0, 0, 1, 0.5, 0.5, 0.5, 0.5];
  const a = 0.865875, b = 1.322526;
  assert.ok(near(groupAdvantages(r, 4), [a, -a, -a, a, 0, 0, 0, 0]));
  assert.ok(near(groupAdvantages(r, 4, { scale: 'none' }), [0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0]));
  assert.ok(near(groupAdvantages(r, 4, { scale: 'batch' }), [b, -b, -b, b, 0, 0, 0, 0]));
  assert.is(fracZeroStd(r, 4), 0.5);
  assert.throws(() => groupAdvantages(r, 3), /do not split into groups of 3/);
});

test('several reward functions: weighted sum, NaN counts as 0, an all-NaN completion gets A = 0', () => {
  const combined = combineRewards([[1, NaN, 0.5, NaN], [0, 2, NaN, NaN]], [1, 0.5]);
  assert.equal(Array.from(combined.slice(0, 3)), [1, 1, 0.5]);
  assert.ok(Number.isNaN(combined[3]));
  const a = groupAdvantages(combined, 4);
  assert.is(a[3], 0);
  // The statistics use 0 for the NaN: rewards [1, 1, .5, 0], mean .625, std (N-1) by hand.
  const sd = Math.sqrt(((0.375 ** 2) * 2 + 0.125 ** 2 + 0.625 ** 2) / 3);
  assert.ok(near(a.slice(0, 3), [0.375 / (sd + 1e-4), 0.375 / (sd + 1e-4), -0.125 / (sd + 1e-4)]));
});

test('KL estimators: check values logp -1, ref -1.5 -> k1 0.5, k2 0.125, k3 0.106531', () => {
  const lp = tf.tensor1d([-1]), ref = tf.tensor1d([-1.5]);
  assert.ok(near(klEstimate(lp, ref, 'k1').dataSync(), [0.5]));
  assert.ok(near(klEstimate(lp, ref, 'k2').dataSync(), [0.125]));
  assert.ok(near(klEstimate(lp, ref, 'k3').dataSync(), [0.106531]));
});

test.run();
