// AdamW, global-norm clipping and LR schedules against torch.optim.AdamW, clip_grad_norm_ and
// LambdaLR with Hugging Face's schedule formulas (test/reference/optim_reference.py, float64).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { AdamW } from '../../src/train/adamw.js';
import { clipByGlobalNorm } from '../../src/train/clip.js';
import { lrSchedule, type ScheduleType } from '../../src/train/schedule.js';
import { maxAbsDiff, useBackend } from '../helpers/backends.js';

type Num = number | 'inf' | '-inf' | 'nan';
interface Arr { shape: number[]; data: Num[] }
const num = (v: Num) => (v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v === 'nan' ? NaN : v);
const tensor = (a: Arr) => tf.tensor(a.data.map(num), a.shape);
const fx = JSON.parse(fs.readFileSync(new URL('../fixtures/optim.json', import.meta.url), 'utf8'));

test.before(() => useBackend('wasm'));

test('12 steps of clip + cosine-with-warmup + AdamW with decay / no-decay groups match torch within 1e-6', () => {
  const { adamw } = fx;
  const params = new Map<string, tf.Variable>(adamw.param_order.map((n: string) => [n, tf.variable(tensor(adamw.initial_params[n]))]));
  const opt = new AdamW(params, { weightDecay: 0.1, betas: adamw.config.betas, eps: adamw.config.eps });
  assert.equal(opt.groups(), { decay: ['w1', 'w2'], noDecay: ['b1', 'norm'] }, 'rank-1 tensors do not decay by default');
  const schedule = lrSchedule({ type: 'cosine', warmupSteps: 3, totalSteps: 12 });
  for (const s of adamw.steps) {
    const lr = adamw.config.lr * schedule(s.step);
    assert.ok(Math.abs(lr - s.lr) < 1e-15, `lr at step ${s.step}`);
    const grads = new Map<string, tf.Tensor>(adamw.param_order.map((n: string) => [n, tensor(s.grads[n])]));
    const { grads: clipped, norm } = clipByGlobalNorm(grads, adamw.config.max_grad_norm);
    assert.ok(Math.abs(norm.dataSync()[0] - s.grad_norm) / Math.max(1, s.grad_norm) < 1e-6, `grad norm at step ${s.step}`);
    for (const n of adamw.param_order) assert.ok(maxAbsDiff(clipped.get(n)!.dataSync(), s.clipped_grads[n].data) < 1e-6, `clipped ${n}`);
    opt.step(clipped, lr);
    for (const n of adamw.param_order) {
      const d = maxAbsDiff(params.get(n)!.dataSync(), s.params[n].data);
      assert.ok(d < 1e-6, `step ${s.step} ${n}: max |diff| ${d}`);
    }
    tf.dispose([...grads.values(), ...clipped.values(), norm]);
  }
  opt.dispose();
  tf.dispose([...params.values()]);
});

test('optimizer state saves and loads by name: the next step is the same as without the round trip', async () => {
  const { adamw } = fx;
  const make = () => new Map<string, tf.Variable>(adamw.param_order.map((n: string) => [n, tf.variable(tensor(adamw.initial_params[n]))]));
  const a = make(), b = make();
  const optA = new AdamW(a, { weightDecay: 0.1 });
  const step = (opt: AdamW, s: { grads: Record<string, Arr> }) => {
    const g = new Map<string, tf.Tensor>(adamw.param_order.map((n: string) => [n, tensor(s.grads[n])]));
    opt.step(g, 0.01);
    tf.dispose([...g.values()]);
  };
  for (const s of adamw.steps.slice(0, 4)) step(optA, s);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-opt-'));
  await optA.save(dir);
  // b: same parameter values, state from disk, parameters given in another order
  for (const n of adamw.param_order) b.get(n)!.assign(a.get(n)!);
  const optB = new AdamW(new Map([...b].reverse()), { weightDecay: 0.1 });
  optB.load(dir);
  step(optA, adamw.steps[4]);
  step(optB, adamw.steps[4]);
  for (const n of adamw.param_order) assert.is(maxAbsDiff(a.get(n)!.dataSync(), b.get(n)!.dataSync()), 0, n);
  fs.rmSync(dir, { recursive: true });
  optA.dispose();
  optB.dispose();
  tf.dispose([...a.values(), ...b.values()]);
});

test('schedules match the Hugging Face formulas at every step', () => {
  const { schedules } = fx.schedules as { schedules: Record<string, { params: Record<string, number>; multipliers: number[] }> };
  const types: Record<string, ScheduleType> = { constant: 'constant', constant_with_warmup: 'constant_with_warmup', linear: 'linear', cosine: 'cosine', cosine_no_warmup: 'cosine' };
  for (const [name, { params, multipliers }] of Object.entries(schedules)) {
    const f = lrSchedule({ type: types[name], warmupSteps: params.num_warmup_steps, totalSteps: params.num_training_steps, numCycles: params.num_cycles });
    multipliers.forEach((m, step) => assert.ok(Math.abs(f(step) - m) < 1e-12, `${name} step ${step}: ${f(step)} vs ${m}`));
  }
});

test('clipping: above the limit, below it (unchanged), and a non-finite gradient', () => {
  for (const c of fx.clip.cases) {
    const grads = new Map<string, tf.Tensor>(c.inputs.map((a: Arr, i: number) => [`g${i}`, tensor(a)]));
    const { grads: out, norm } = clipByGlobalNorm(grads, c.max_norm);
    const total = norm.dataSync()[0];
    if (c.total_norm_is_finite) assert.ok(Math.abs(total - c.total_norm) < 1e-5, c.name);
    else assert.is(total, Infinity, c.name);
    c.clipped.forEach((want: Arr, i: number) => {
      const got = out.get(`g${i}`)!.dataSync();
      want.data.forEach((w, j) => {
        const v = num(w);
        if (Number.isNaN(v)) assert.ok(Number.isNaN(got[j]), `${c.name}: NaN kept`);
        else assert.ok(Math.abs(got[j] - v) < 1e-6, `${c.name}[${i}][${j}]`);
      });
    });
    tf.dispose([...grads.values(), ...out.values(), norm]);
  }
});

test.run();
