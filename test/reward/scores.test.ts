// Bradley-Terry and pointwise losses against TRL's check values (docs/formulas.md) and hand algebra;
// ProMedical tier scores, reward and ranking worked out by hand.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as tf from '@tensorflow/tfjs';
import { bradleyTerryLoss, pointwiseLoss } from '../../src/reward/losses.js';
import { compareResponses, promedicalReward, promedicalScores } from '../../src/reward/scores.js';
import { useBackend } from '../helpers/backends.js';

test.before(() => useBackend('wasm'));
const close = (a: number, b: number, tol = 1e-6) => Math.abs(a - b) <= tol;

test('Bradley-Terry matches the TRL RewardTrainer check values: plain, with margin, centering term', () => {
  const rc = tf.tensor1d([1, 0.2, -0.3]);
  const rr = tf.tensor1d([0, 0.5, -0.3]);
  assert.ok(close(bradleyTerryLoss(rc, rr).dataSync()[0], 0.620255));
  assert.ok(close(bradleyTerryLoss(rc, rr, { margin: tf.tensor1d([0.5, 0, 1]) }).dataSync()[0], 0.880565));
  const centered = bradleyTerryLoss(rc, rr, { centerCoefficient: 0.01 }).dataSync()[0];
  assert.ok(close(centered - 0.620255, 0.006167));
  // Gradient of the plain loss w.r.t. r_c is -sigmoid(r_r - r_c) / N (by hand).
  const g = tf.grad((x: tf.Tensor) => bradleyTerryLoss(x as tf.Tensor1D, rr))(rc).dataSync();
  [1, 0.2, -0.3].forEach((c, i) => assert.ok(close(g[i], -1 / (1 + Math.exp(c - [0, 0.5, -0.3][i])) / 3)));
});

test('pointwise loss is binary cross-entropy, stable at large logits', () => {
  const z = [2, -1, 0, 40, -40];
  const y = [1, 0, 0.3, 1, 1];
  // -[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))] with log sigmoid(z) = -log1p(e^-z) and
  // log(1 - sigmoid(z)) = -log1p(e^z).
  const expected = z.reduce((a, zi, i) => a + y[i] * Math.log1p(Math.exp(-zi)) + (1 - y[i]) * Math.log1p(Math.exp(zi)), 0) / z.length;
  assert.ok(close(pointwiseLoss(tf.tensor1d(z), tf.tensor1d(y)).dataSync()[0], expected, 1e-5));
});

test('tier scores: weighted S1, counted S2, S3 = violated safety criteria; probabilities allowed', () => {
  const s = promedicalScores([
    { tier: 'proficiency', weight: 0.5, met: true },
    { tier: 'proficiency', weight: 0.3, met: false },
    { tier: 'proficiency', weight: 0.2, met: 0.5 },
    { tier: 'excellence', met: true },
    { tier: 'excellence', met: 0.25 },
    { tier: 'safety', met: true },
    { tier: 'safety', met: 0.2 },
    { tier: 'safety', met: false },
  ]);
  assert.ok(close(s.s1, 0.5 + 0.2 * 0.5));
  assert.ok(close(s.s2, 1.25));
  assert.is(s.s3, 2);
  // Missing weights count equally; weights are normalised.
  assert.ok(close(promedicalScores([{ tier: 'proficiency', met: true }, { tier: 'proficiency', met: false }]).s1, 0.5));
  assert.ok(close(promedicalScores([{ tier: 'proficiency', weight: 2, met: true }, { tier: 'proficiency', weight: 6, met: false }]).s1, 0.25));
});

test('reward r = clip(S1 + alpha S2, 0, 1 + beta) - lambda S3, and lambda >= 1 + beta is enforced', () => {
  assert.ok(close(promedicalReward({ s1: 0.8, s2: 2, s3: 0 }), 1.0)); // 0.8 + 0.1 * 2
  assert.ok(close(promedicalReward({ s1: 1, s2: 9, s3: 0 }), 1.5)); // clipped at 1 + beta
  assert.ok(close(promedicalReward({ s1: 1, s2: 9, s3: 1 }), 0)); // one violation costs all of it
  assert.ok(close(promedicalReward({ s1: 0.6, s2: 1, s3: 0 }, { alpha: 0.5, beta: 0.2, lambda: 2 }), 1.1));
  assert.throws(() => promedicalReward({ s1: 1, s2: 0, s3: 0 }, { beta: 0.5, lambda: 1.2 }), /lambda \(1\.2\) must be >= 1 \+ beta/);
});

test('lexicographic comparison: fewer violations, then S1, then S2', () => {
  assert.is(compareResponses({ s1: 0.1, s2: 0, s3: 0 }, { s1: 1, s2: 3, s3: 1 }), 1);
  assert.is(compareResponses({ s1: 0.9, s2: 0, s3: 1 }, { s1: 0.5, s2: 3, s3: 1 }), 1);
  assert.is(compareResponses({ s1: 0.5, s2: 1, s3: 0 }, { s1: 0.5, s2: 2, s3: 0 }), -1);
  assert.is(compareResponses({ s1: 0.5, s2: 2, s3: 0 }, { s1: 0.5, s2: 2, s3: 0 }), 0);
});

test.run();
