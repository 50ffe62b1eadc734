// grpoLoss against a float64 PyTorch implementation of TRL's GRPO loss
// (test/reference/grpo_reference.py -> test/fixtures/grpo.json): every loss type, clip-higher,
// delta, GSPO sequence-level ratios, single-update, empty rows; values, gradients and metrics.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { fracZeroStd, groupAdvantages } from '../../src/grpo/advantages.js';
import { grpoLoss, klEstimate } from '../../src/grpo/loss.js';
import { maxAbsDiff, useBackend } from '../helpers/backends.js';

const fx = JSON.parse(fs.readFileSync(new URL('../fixtures/grpo.json', import.meta.url), 'utf8'));
test.before(() => useBackend('wasm'));
const flat = (a: number[][]) => a.flat();

test('every loss case: value, gradient w.r.t. logp, clip and KL metrics', () => {
  for (const c of fx.loss.cases) {
    const inp = fx.loss.inputs[c.inputs];
    const s = c.settings;
    const logp = tf.tensor2d(inp.logp);
    const opts = {
      lossType: s.loss_type, epsilon: s.epsilon_low, epsilonHigh: s.epsilon_high, beta: s.beta,
      delta: s.delta ?? undefined, importanceSampling: s.importance_sampling_level, maxCompletionLength: s.max_completion_length, activeTokens: s.num_items_in_batch,
    };
    const args = (lp: tf.Tensor) => ({
      logp: lp as tf.Tensor2D, mask: tf.tensor2d(inp.mask), advantages: tf.tensor1d(inp.advantages),
      oldLogp: c.single_update ? undefined : tf.tensor2d(inp.old_logp), refLogp: tf.tensor2d(inp.ref_logp),
    });
    const { loss, metrics } = grpoLoss(args(logp), opts);
    assert.ok(Math.abs(loss.dataSync()[0] - c.loss) < 1e-5, `${c.name}: loss ${loss.dataSync()[0]} vs ${c.loss}`);
    const grad = tf.grad((lp: tf.Tensor) => grpoLoss(args(lp), opts).loss)(logp);
    assert.ok(maxAbsDiff(grad.dataSync(), flat(c.grad_logp)) < 1e-5, `${c.name}: gradient ${maxAbsDiff(grad.dataSync(), flat(c.grad_logp))}`);
    const m = c.metrics;
    assert.ok(Math.abs(metrics.clipRatioLow - m.clip_ratio_low_mean) < 1e-6, `${c.name} low`);
    assert.ok(Math.abs(metrics.clipRatioHigh - m.clip_ratio_high_mean) < 1e-6, `${c.name} high`);
    assert.ok(Math.abs(metrics.clipRatioRegion - m.clip_ratio_region_mean) < 1e-6, `${c.name} region`);
    if (m.kl === null) assert.is(metrics.kl, undefined);
    else assert.ok(Math.abs(metrics.kl! - m.kl) < 1e-5, `${c.name} kl`);
  }
});

test('the reference really exercises both clip sides, delta and the empty row', () => {
  const names = fx.loss.cases.map((c: { name: string }) => c.name);
  assert.ok(names.includes('grpo_delta1.3') && names.includes('grpo_gspo_sequence_beta0') && names.includes('bnpo_zero_mask_row'));
  const base = fx.loss.cases[0].metrics;
  assert.ok(base.clip_ratio_low_mean > 0 && base.clip_ratio_high_mean > 0);
});

test('advantages and frac_reward_zero_std match the reference (group, batch, none; a constant group)', () => {
  for (const c of fx.advantages.cases) {
    const got = groupAdvantages(c.rewards, c.num_generations, { scale: c.scale_rewards });
    assert.ok(maxAbsDiff(got, c.advantages) < 1e-5, c.name);
    assert.ok(Math.abs(fracZeroStd(c.rewards, c.num_generations) - c.frac_reward_zero_std) < 1e-12, c.name);
  }
});

test('KL estimators on random pairs', () => {
  const r = fx.kl.random;
  for (const k of ['k1', 'k2', 'k3'] as const) {
    assert.ok(maxAbsDiff(klEstimate(tf.tensor1d(r.logp), tf.tensor1d(r.ref_logp), k).dataSync(), r[k]) < 1e-5, k);
  }
});

test('beta without reference log-probs, and dr_grpo without a length, are refused', () => {
  const x = { logp: tf.zeros([1, 2]) as tf.Tensor2D, mask: tf.ones([1, 2]) as tf.Tensor2D, advantages: tf.zeros([1]) as tf.Tensor1D };
  assert.throws(() => grpoLoss(x, { beta: 0.04 }), /beta != 0 needs refLogp/);
  assert.throws(() => grpoLoss(x, { lossType: 'dr_grpo' }), /dr_grpo needs maxCompletionLength/);
  // A typo never silently runs another aggregation.
  for (const t of ['foo', 'dr-grpo']) assert.throws(() => grpoLoss(x, { lossType: t as 'grpo' }), new RegExp(`unknown lossType "${t}"; expected one of grpo, bnpo, dr_grpo, dapo`));
});

test.run();
