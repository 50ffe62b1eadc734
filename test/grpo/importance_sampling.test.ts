// importanceSamplingCorrection against a float64 PyTorch implementation of TRL 1.10's vLLM
// importance-sampling correction (test/reference/grpo_reference.py -> test/fixtures/grpo.json):
// every mode, with ratios really outside the clip range, bounds on one side only, an empty mask;
// the ratio fed to grpoLoss; the refusals; tensor counts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { importanceSamplingCorrection, importanceSamplingTerms, IMPORTANCE_SAMPLING_MODES, samplingMetrics, type ImportanceSamplingMode } from '../../src/grpo/importance_sampling.js';
import { grpoLoss } from '../../src/grpo/loss.js';
import { maxAbsDiff, useBackend } from '../helpers/backends.js';

const fx = JSON.parse(fs.readFileSync(new URL('../fixtures/grpo.json', import.meta.url), 'utf8'));
const IS = fx.importance_sampling;
test.before(() => useBackend('wasm'));

interface Case { name: string; mask: string; mode: ImportanceSamplingMode; clip_min: number | null; clip_max: number | null; ratio: number[][]; metrics: Record<string, number> }
const inputs = (maskKey: string) => [tf.tensor2d(IS.inputs.old_logp), tf.tensor2d(IS.inputs.sampling_logp), tf.tensor2d(IS.inputs.masks[maskKey])] as const;
/** Relative tolerance: sequence ratios reach e^3 and more in float32. */
const close = (a: number, b: number) => Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b));

test('every mode and bound: the ratio and the five sampling metrics', () => {
  assert.equal([...IMPORTANCE_SAMPLING_MODES], ['token_truncate', 'token_mask', 'sequence_truncate', 'sequence_mask']);
  for (const c of IS.cases as Case[]) {
    const [old, samp, mask] = inputs(c.mask);
    const { ratio, metrics } = importanceSamplingCorrection(old, samp, mask, { mode: c.mode, clipMin: c.clip_min, clipMax: c.clip_max });
    assert.equal(ratio.shape, [c.ratio.length, c.ratio[0].length], c.name);
    assert.is(ratio.shape[1], c.mode.startsWith('sequence') ? 1 : old.shape[1], c.name);
    const got = ratio.dataSync();
    c.ratio.flat().forEach((v, i) => assert.ok(close(got[i], v), `${c.name}: ratio[${i}] ${got[i]} vs ${v}`));
    assert.equal(Object.keys(metrics).sort(), Object.keys(c.metrics).sort(), c.name);
    for (const [k, v] of Object.entries(c.metrics)) {
      const g = metrics[k as keyof typeof metrics];
      assert.ok(close(g, v), `${c.name}: ${k} ${g} vs ${v}`);
    }
    // The device-side variant the trainer uses: the same statistics, read later.
    const terms = importanceSamplingTerms(old, samp, mask, { mode: c.mode, clipMin: c.clip_min, clipMax: c.clip_max });
    const later = samplingMetrics(terms.stats.dataSync());
    for (const [k, v] of Object.entries(c.metrics)) assert.ok(close(later[k as keyof typeof later], v), `${c.name} (terms): ${k}`);
    tf.dispose([old, samp, mask, ratio, terms.ratio, terms.stats]);
  }
});

test('defaults: sequence_mask with clipMax 3 and no clipMin', () => {
  const c = (IS.cases as Case[]).find((x) => x.name === 'sequence_mask_default')!;
  const [old, samp, mask] = inputs('main');
  const { ratio, metrics } = importanceSamplingCorrection(old, samp, mask);
  assert.ok(maxAbsDiff(ratio.dataSync(), c.ratio.flat()) < 1e-5);
  assert.ok(close(metrics['sampling/importance_sampling_ratio/mean'], c.metrics['sampling/importance_sampling_ratio/mean']));
  // Ratios really fall outside [0.5, 3] on both sides, so truncation and masking both act.
  const raw = importanceSamplingCorrection(old, samp, mask, { mode: 'token_truncate', clipMax: null, clipMin: 1e-30 });
  const r = raw.ratio.dataSync(), m = mask.dataSync();
  assert.ok(Array.from(r).some((v, i) => m[i] > 0 && v > 3) && Array.from(r).some((v, i) => m[i] > 0 && v < 0.5));
  tf.dispose([old, samp, mask, ratio, raw.ratio]);
});

test('the ratio goes into grpoLoss as importanceSamplingRatio, [B, T] and [B, 1]', () => {
  const [old, samp, mask] = inputs('main');
  const B = old.shape[0];
  for (const mode of ['token_truncate', 'sequence_mask'] as const) {
    const { ratio } = importanceSamplingCorrection(old, samp, mask, { mode });
    const base = { logp: old, oldLogp: old, mask, advantages: tf.linspace(-1, 1, B) as tf.Tensor1D };
    // The ratio multiplies each token's loss: at the old policy (ratio 1) the bnpo loss is -Σ A_i r_i,t m / Σ m.
    const { loss } = grpoLoss({ ...base, importanceSamplingRatio: ratio }, { lossType: 'bnpo' });
    const r = tf.tidy(() => ratio.mul(tf.onesLike(old)));
    const want = tf.tidy(() => r.mul(base.advantages.expandDims(1)).mul(mask).sum().div(mask.sum()).neg());
    assert.ok(Math.abs(loss.dataSync()[0] - want.dataSync()[0]) < 1e-5, mode);
    tf.dispose([ratio, loss, r, want, base.advantages]);
  }
  tf.dispose([old, samp, mask]);
});

test('check values of docs/formulas.md: differences [1, 0.5] in one sequence', () => {
  const old = tf.tensor2d([[0, 0]]), samp = tf.tensor2d([[-1, -0.5]]), mask = tf.tensor2d([[1, 1]]);
  const run = (mode: ImportanceSamplingMode) => importanceSamplingCorrection(old, samp, mask, { mode });
  assert.is(run('sequence_mask').ratio.dataSync()[0], 0);
  assert.is(run('sequence_truncate').ratio.dataSync()[0], 3);
  const tok = run('token_mask');
  assert.ok(maxAbsDiff(tok.ratio.dataSync(), [2.718282, 1.648721]) < 1e-5);
  assert.ok(close(tok.metrics['sampling/sampling_logp_difference/mean'], 0.75) && tok.metrics['sampling/sampling_logp_difference/max'] === 1);
  const seq = importanceSamplingCorrection(old, samp, mask, { mode: 'sequence_truncate', clipMax: null, clipMin: 0 });
  assert.ok(close(seq.ratio.dataSync()[0], 4.481689));
});

test('refusals: unknown mode, crossed bounds, truncation without bounds, shape mismatch', () => {
  const [old, samp, mask] = inputs('main');
  assert.throws(() => importanceSamplingCorrection(old, samp, mask, { mode: 'token' as 'token_mask' }), /unknown mode "token"; expected one of token_truncate, token_mask, sequence_truncate, sequence_mask/);
  assert.throws(() => importanceSamplingCorrection(old, samp, mask, { clipMin: 3 }), /clipMin \(3\) must be less than clipMax \(3\)/);
  assert.throws(() => importanceSamplingCorrection(old, samp, mask, { mode: 'sequence_truncate', clipMax: null }), /sequence_truncate needs clipMin or clipMax/);
  assert.throws(() => importanceSamplingCorrection(old, tf.zeros([2, 2]) as tf.Tensor2D, mask), /samplingLogp must be \[6, 5\] like oldLogp/);
  assert.throws(() => importanceSamplingCorrection(old, samp, tf.ones([6, 4]) as tf.Tensor2D), /mask must be \[6, 5\] like oldLogp/);
  tf.dispose([old, samp, mask]);
});

test('tensor count: only the returned ratio survives a call', () => {
  const [old, samp, mask] = inputs('main');
  for (const mode of IMPORTANCE_SAMPLING_MODES) {
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) importanceSamplingCorrection(old, samp, mask, { mode, clipMin: 0.5 }).ratio.dispose();
    assert.is(tf.memory().numTensors, before, mode);
  }
  tf.dispose([old, samp, mask]);
});

test.run();
