// grpoLoss against a float64 PyTorch implementation of TRL 1.10's GRPO loss
// (test/reference/grpo_reference.py -> test/fixtures/grpo.json): every loss type at both levels
// (luspo: sequence), clip-higher, delta, GSPO, single-update, empty rows, bias-corrected KL, the
// off-policy mask, the high-entropy mask, the entropy bonus, the sampler IS ratio ([B, T] and
// [B, 1]) and vespo's clamps; values, gradients and metrics; the refusals; device reads; tensor counts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { fracZeroStd, groupAdvantages } from '../../src/grpo/advantages.js';
import { grpoLoss, grpoLossTerms, klEstimate, LOSS_TYPES, type GrpoInputs, type GrpoLossOptions, type GrpoMetrics } from '../../src/grpo/loss.js';
import { maxAbsDiff, useBackend } from '../helpers/backends.js';

const fx = JSON.parse(fs.readFileSync(new URL('../fixtures/grpo.json', import.meta.url), 'utf8'));
test.before(() => useBackend('wasm'));
const flat = (a: number[][]) => a.flat();

interface Case {
  name: string;
  inputs: string;
  single_update: boolean;
  settings: Record<string, any>;
  loss: number;
  grad_logp: number[][];
  metrics: Record<string, number | null>;
}

function optionsOf(s: Case['settings']): GrpoLossOptions {
  return {
    lossType: s.loss_type, epsilon: s.epsilon_low, epsilonHigh: s.epsilon_high, beta: s.beta, delta: s.delta ?? undefined,
    importanceSampling: s.importance_sampling_level, maxCompletionLength: s.max_completion_length, activeTokens: s.num_items_in_batch,
    useBiasCorrectionKl: s.use_bias_correction_kl, offPolicyMaskThreshold: s.off_policy_mask_threshold ?? undefined,
    topEntropyQuantile: s.top_entropy_quantile, entropyCoef: s.entropy_coef,
    sapoTemperaturePos: s.sapo_temperature_pos, sapoTemperatureNeg: s.sapo_temperature_neg,
    vespoKPos: s.vespo_k_pos, vespoLambdaPos: s.vespo_lambda_pos, vespoKNeg: s.vespo_k_neg, vespoLambdaNeg: s.vespo_lambda_neg,
  };
}

function inputsOf(c: Case, logp: tf.Tensor): GrpoInputs {
  const inp = fx.loss.inputs[c.inputs];
  const s = c.settings;
  return {
    logp: logp as tf.Tensor2D, mask: tf.tensor2d(inp.mask), advantages: tf.tensor1d(inp.advantages),
    oldLogp: c.single_update ? undefined : tf.tensor2d(inp.old_logp), refLogp: tf.tensor2d(inp.ref_logp),
    entropies: tf.tensor2d(inp.entropies), samplingLogp: s.use_sampling_logp ? tf.tensor2d(inp.sampling_logp) : undefined,
    importanceSamplingRatio: s.is_ratio ? tf.tensor2d(inp[`is_ratio_${s.is_ratio}`]) : undefined,
  };
}

const METRIC_NAMES: [keyof GrpoMetrics, string][] = [
  ['kl', 'kl'], ['clipRatioLow', 'clip_ratio_low_mean'], ['clipRatioHigh', 'clip_ratio_high_mean'], ['clipRatioRegion', 'clip_ratio_region_mean'],
  ['entropy', 'entropy'], ['cispoClipRatio', 'cispo_clip_ratio'], ['vespoPhiMean', 'vespo_phi_seq_mean'], ['policyLoss', 'policy_loss'],
];

test('every loss case: value, gradient w.r.t. logp and every metric', () => {
  for (const c of fx.loss.cases as Case[]) {
    const logp = tf.tensor2d(fx.loss.inputs[c.inputs].logp);
    const opts = optionsOf(c.settings);
    const { loss, metrics } = grpoLoss(inputsOf(c, logp), opts);
    const value = loss.dataSync()[0];
    assert.ok(Math.abs(value - c.loss) < 1e-5, `${c.name}: loss ${value} vs ${c.loss}`);
    const grad = tf.grad((lp: tf.Tensor) => grpoLoss(inputsOf(c, lp), opts).loss)(logp);
    const gErr = maxAbsDiff(grad.dataSync(), flat(c.grad_logp));
    assert.ok(gErr < 1e-5, `${c.name}: gradient off by ${gErr}`);
    for (const [ts, py] of METRIC_NAMES) {
      const want = c.metrics[py];
      if (want === null) assert.is(metrics[ts], undefined, `${c.name}: ${ts} should be absent`);
      else assert.ok(Math.abs(metrics[ts]! - want) < 1e-5, `${c.name}: ${ts} ${metrics[ts]} vs ${want}`);
    }
  }
});

test('the reference really exercises each loss type, level and option', () => {
  const cases = fx.loss.cases as Case[];
  const names = new Set(cases.map((c) => c.name));
  for (const n of ['grpo_delta1.3', 'grpo_gspo_sequence_beta0', 'bnpo_zero_mask_row', 'vespo_extreme_clamps', 'dapo_all_options', 'grpo_bias_kl_single_update']) assert.ok(names.has(n), n);
  for (const lt of LOSS_TYPES) {
    for (const level of ['token', 'sequence']) {
      if (lt === 'luspo' && level === 'token') continue;
      assert.ok(cases.some((c) => c.settings.loss_type === lt && c.settings.importance_sampling_level === level), `${lt} ${level}`);
    }
  }
  const base = cases[0].metrics;
  assert.ok(base.clip_ratio_low_mean! > 0 && base.clip_ratio_high_mean! > 0);
  assert.ok(cases.find((c) => c.name === 'cispo_token_beta0.04')!.metrics.cispo_clip_ratio! > 0);
  const on = (k: string, v: (x: any) => boolean) => cases.filter((c) => v(c.settings[k])).length;
  assert.ok(on('off_policy_mask_threshold', (x) => x !== null) >= 2 && on('top_entropy_quantile', (x) => x < 1) >= 4);
  assert.ok(on('entropy_coef', (x) => x !== 0) >= 4 && on('is_ratio', (x) => x === 'token') >= 3 && on('is_ratio', (x) => x === 'sequence') >= 3);
});

test('entropy bonus: the loss is the policy loss minus coef x the mean entropy', () => {
  const c = (fx.loss.cases as Case[]).find((x) => x.name === 'grpo_entropy_coef0.01')!;
  const inp = fx.loss.inputs.main;
  const H = flat(inp.entropies), m = flat(inp.mask);
  const mean = H.reduce((a, h, i) => a + h * m[i], 0) / m.reduce((a, v) => a + v, 0);
  const { loss, metrics } = grpoLoss(inputsOf(c, tf.tensor2d(inp.logp)), optionsOf(c.settings));
  assert.ok(Math.abs(loss.dataSync()[0] - (metrics.policyLoss! - 0.01 * mean)) < 1e-6);
  assert.ok(Math.abs(metrics.entropy! - mean) < 1e-6);
});

test('check values of docs/formulas.md: bias-corrected KL, cispo, sapo, luspo, vespo, the two masks', () => {
  const t2 = (rows: number[][]) => tf.tensor2d(rows);
  const one = (logp: number, old: number, A: number[], opts: GrpoLossOptions, extra: Partial<GrpoInputs> = {}) => {
    const lp = t2(A.map(() => [logp]));
    const inputs = (x: tf.Tensor): GrpoInputs => ({ logp: x as tf.Tensor2D, oldLogp: t2(A.map(() => [old])), mask: t2(A.map(() => [1])), advantages: tf.tensor1d(A), ...extra });
    const { loss, metrics } = grpoLoss(inputs(lp), opts);
    const grad = tf.grad((x: tf.Tensor) => grpoLoss(inputs(x), opts).loss)(lp).dataSync();
    return { loss: loss.dataSync()[0], metrics, grad };
  };
  const close = (a: number, b: number, tol = 1e-5) => Math.abs(a - b) < tol;
  // Bias-corrected KL: logp -1, old -1.5, ref -1.5 -> e^0.5 * 0.106531.
  const kl = one(-1, -1.5, [0], { beta: 0.04, useBiasCorrectionKl: true }, { refLogp: t2([[-1.5]]) });
  assert.ok(close(kl.metrics.kl!, 0.175639), String(kl.metrics.kl));
  // cispo: rho e^0.5 capped at 1.2; loss per token -1.2 * A * logp, gradient -1.2 * A (one token each, N_active 1).
  const c1 = one(-0.5, -1, [1], { lossType: 'cispo', epsilonHigh: 1.2 });
  assert.ok(close(c1.loss, 0.6) && close(c1.grad[0], -1.2) && c1.metrics.cispoClipRatio === 1);
  assert.ok(close(one(-0.5, -1, [-1], { lossType: 'cispo', epsilonHigh: 1.2 }).loss, -0.6));
  // sapo.
  assert.ok(close(one(-0.5, -1, [1], { lossType: 'sapo' }).loss, -2.626889));
  assert.ok(close(one(-0.5, -1, [-1], { lossType: 'sapo' }).loss, 2.529512));
  // vespo: log w = 0.5 -> phi 0.388227 (A >= 0), 1.224530 (A < 0); loss -phi * A * logp.
  const v = one(-0.5, -1, [1], { lossType: 'vespo' });
  assert.ok(close(v.metrics.vespoPhiMean!, 0.388227) && close(v.loss, 0.194114) && close(v.grad[0], -0.388227));
  assert.ok(close(one(-0.5, -1, [-1], { lossType: 'vespo' }).metrics.vespoPhiMean!, 1.22453));
  // luspo: lengths 3 and 1, mean log-ratios 0.1 and -0.3, A = +1, -1.
  const lu = grpoLoss({
    logp: t2([[0.1, 0.1, 0.1], [-0.3, 0, 0]]), oldLogp: t2([[0, 0, 0], [0, 0, 0]]), mask: t2([[1, 1, 1], [1, 0, 0]]), advantages: tf.tensor1d([1, -1]),
  }, { lossType: 'luspo', importanceSampling: 'sequence' });
  assert.ok(close(lu.loss.dataSync()[0], -1.257756));
  // Off-policy mask: A = [-1, -1, +1], mean (sampling - logp) = [0.3, 0.1, 0.9], threshold 0.2 -> drops row 0.
  // With rho = 1 each kept row's grpo loss is -A; the mean over the three rows is (0 + 1 - 1) / 3.
  const op = grpoLoss({ logp: t2([[0], [0], [0]]), samplingLogp: t2([[0.3], [0.1], [0.9]]), mask: t2([[1], [1], [1]]), advantages: tf.tensor1d([-1, -1, 1]) }, { offPolicyMaskThreshold: 0.2 });
  assert.ok(close(op.loss.dataSync()[0], 0));
  const op2 = grpoLoss({ logp: t2([[0], [0], [0]]), samplingLogp: t2([[0.3], [0.1], [0.9]]), mask: t2([[1], [1], [1]]), advantages: tf.tensor1d([-1, -1, 2]) }, { offPolicyMaskThreshold: 0.2 });
  assert.ok(close(op2.loss.dataSync()[0], (1 - 2) / 3));
  // Entropy mask: H = [0.5, 1, 2, 4]; rho 0.5 -> theta 1.5 keeps the last two tokens; rho 0.2 -> theta 2.8 keeps the last.
  const ent = { logp: t2([[0, 0, 0, 0]]), mask: t2([[1, 1, 1, 1]]), advantages: tf.tensor1d([1]), entropies: t2([[0.5, 1, 2, 4]]) };
  assert.ok(close(grpoLoss(ent, { lossType: 'dapo', topEntropyQuantile: 0.5 }).loss.dataSync()[0], -2 / 4));
  assert.ok(close(grpoLoss(ent, { lossType: 'dapo', topEntropyQuantile: 0.2 }).loss.dataSync()[0], -1 / 4));
  assert.ok(close(grpoLoss(ent, { lossType: 'dapo', topEntropyQuantile: 0 }).loss.dataSync()[0], -1 / 4));
  // No active token: nothing kept, nothing NaN.
  assert.is(grpoLoss({ ...ent, mask: t2([[0, 0, 0, 0]]) }, { lossType: 'dapo', topEntropyQuantile: 0.5, entropyCoef: 0.1 }).loss.dataSync()[0], 0);
});

test('refusals: missing inputs or options, luspo at token level, bad shapes, unknown names', () => {
  const x = (B = 2, T = 3): GrpoInputs => ({ logp: tf.zeros([B, T]) as tf.Tensor2D, mask: tf.ones([B, T]) as tf.Tensor2D, advantages: tf.zeros([B]) as tf.Tensor1D });
  assert.throws(() => grpoLoss(x(), { beta: 0.04 }), /beta != 0 needs refLogp/);
  assert.throws(() => grpoLoss(x(), { lossType: 'dr_grpo' }), /dr_grpo needs maxCompletionLength/);
  assert.throws(() => grpoLoss(x(), { lossType: 'cispo' }), /cispo needs epsilonHigh, the absolute cap of the ratio/);
  assert.throws(() => grpoLoss(x(), { lossType: 'luspo' }), /luspo needs importanceSampling: 'sequence'/);
  assert.throws(() => grpoLoss(x(), { lossType: 'luspo', importanceSampling: 'token' }), /luspo needs importanceSampling: 'sequence'/);
  assert.throws(() => grpoLoss(x(), { topEntropyQuantile: 0.2 }), /topEntropyQuantile < 1 needs inputs.entropies/);
  assert.throws(() => grpoLoss({ ...x(), entropies: tf.ones([2, 3]) as tf.Tensor2D }, { topEntropyQuantile: 1.5 }), /topEntropyQuantile must be in \[0, 1\]/);
  assert.throws(() => grpoLoss(x(), { entropyCoef: 0.01 }), /entropyCoef != 0 needs inputs.entropies/);
  assert.throws(() => grpoLoss(x(), { importanceSampling: 'seq' as 'token' }), /unknown importanceSampling "seq"/);
  for (const shape of [[2, 4], [1, 3], [2, 2], [3, 1]]) {
    assert.throws(() => grpoLoss({ ...x(), importanceSamplingRatio: tf.ones(shape as [number, number]) as tf.Tensor2D }), /importanceSamplingRatio must be \[B, T\] = \[2, 3\] \(token modes\) or \[B, 1\] = \[2, 1\]/, String(shape));
  }
  assert.throws(() => grpoLoss({ ...x(), importanceSamplingRatio: tf.ones([2]) as unknown as tf.Tensor2D }), /importanceSamplingRatio must be/);
  assert.throws(() => grpoLoss({ ...x(), entropies: tf.ones([2, 2]) as tf.Tensor2D }), /entropies must be \[B, T\]/);
  assert.throws(() => grpoLoss({ ...x(), samplingLogp: tf.ones([1, 3]) as tf.Tensor2D }, { offPolicyMaskThreshold: 0.5 }), /samplingLogp must be \[B, T\]/);
  // A typo never silently runs another aggregation.
  for (const t of ['foo', 'dr-grpo']) {
    assert.throws(() => grpoLoss(x(), { lossType: t as 'grpo' }), new RegExp(`unknown lossType "${t}"; expected one of grpo, bnpo, dr_grpo, dapo, cispo, sapo, luspo, vespo`));
  }
  // Nothing refused leaks tensors.
  const before = tf.memory().numTensors;
  const probe = x();
  try { grpoLoss(probe, { lossType: 'cispo' }); } catch { /* refused */ }
  tf.dispose(Object.values(probe));
  assert.is(tf.memory().numTensors, before);
});

test('grpoLoss reads the device once; grpoLossTerms never', () => {
  const c = (fx.loss.cases as Case[]).find((x) => x.name === 'dapo_all_options')!;
  const inputs = inputsOf(c, tf.tensor2d(fx.loss.inputs.main.logp));
  const proto = tf.Tensor.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  let reads = 0;
  const saved = { dataSync: proto.dataSync, data: proto.data, arraySync: proto.arraySync, array: proto.array };
  for (const k of Object.keys(saved) as (keyof typeof saved)[]) {
    proto[k] = function (this: unknown, ...a: unknown[]) { reads++; return saved[k].apply(this, a); };
  }
  try {
    const { loss, metrics } = grpoLoss(inputs, optionsOf(c.settings));
    assert.is(reads, 1, 'grpoLoss');
    assert.ok(metrics.policyLoss !== undefined && metrics.entropy !== undefined && metrics.kl !== undefined);
    loss.dispose();
    reads = 0;
    const terms = grpoLossTerms(inputs, optionsOf(c.settings));
    assert.is(reads, 0, 'grpoLossTerms');
    for (const t of Object.values(terms.metrics)) assert.ok(t instanceof tf.Tensor && t.rank === 0);
    tf.dispose([terms.loss, ...Object.values(terms.metrics)]);
  } finally {
    Object.assign(proto, saved);
  }
  tf.dispose(Object.values(inputs));
});

test('tensor count stays flat across repeated calls (value, gradient, every option)', () => {
  const pick = ['dapo_all_options', 'vespo_extreme_clamps', 'luspo_top_entropy_0.4', 'cispo_sequence_beta0.04', 'sapo_is_ratio_token', 'grpo_single_update_beta0', 'bnpo_top_entropy_zero_mask_row'];
  for (const name of pick) {
    const c = (fx.loss.cases as Case[]).find((x) => x.name === name)!;
    const inputs = inputsOf(c, tf.tensor2d(fx.loss.inputs[c.inputs].logp));
    const opts = optionsOf(c.settings);
    const step = () => {
      const { loss } = grpoLoss(inputs, opts);
      loss.dispose();
      const terms = grpoLossTerms(inputs, opts);
      tf.dispose([terms.loss, ...Object.values(terms.metrics)]);
      const { value, grads } = tf.variableGrads(() => grpoLoss({ ...inputs, logp: inputs.logp.add(lp) as tf.Tensor2D }, opts).loss, [lp]);
      tf.dispose([value, ...Object.values(grads)]);
    };
    const lp = tf.variable(tf.zerosLike(inputs.logp));
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    assert.is(tf.memory().numTensors, before, name);
    lp.dispose();
    tf.dispose(Object.values(inputs));
  }
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

test.run();
