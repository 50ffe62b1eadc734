// The shared training loop end to end on a small Qwen3: accumulation, metrics.jsonl, chart,
// checkpoints, exact resume, crash during a save, NaN guard, flat tensor count.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadQwen3 } from '../../src/model/pretrained.js';
import { addLora } from '../../src/model/lora.js';
import type { Qwen3ForCausalLM } from '../../src/model/qwen3.js';
import { latestCheckpoint, listCheckpoints, restoreCheckpoint, RunDirError } from '../../src/train/run_state.js';
import { NonFiniteError, TrainingRun, type TrainingRunOptions } from '../../src/train/run.js';
import { maxAbsDiff, useBackend } from '../helpers/backends.js';
import { nextTokenLoss } from '../helpers/lm.js';

const fixture = new URL('../fixtures/qwen3/tied-gqa2-f32', import.meta.url).pathname;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-run-'));
test.before(() => useBackend('wasm'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A small fixed corpus of 6 sequences of 8 ids. */
const CORPUS = Array.from({ length: 6 }, (_, r) => Array.from({ length: 8 }, (_, t) => (r * 17 + t * t * 5 + 3) % 96));

/** A "data loader": rows drawn from the corpus with the run's own random stream (so resume replays it). */
function batch(run: TrainingRun, rows: number): tf.Tensor2D {
  const ids = Array.from({ length: rows }, () => CORPUS[run.rng.int(CORPUS.length)]);
  run.data = { drawn: ((run.data as { drawn?: number } | undefined)?.drawn ?? 0) + 1 };
  return tf.tensor2d(ids, [rows, 8], 'int32');
}

async function train(model: Qwen3ForCausalLM, opts: Partial<TrainingRunOptions> & { runDir: string }, until: number): Promise<{ run: TrainingRun; losses: number[]; counts: number[] }> {
  const run = await TrainingRun.start({ model, lr: 2e-2, totalSteps: 6, seed: 3, quiet: true, saveEvery: 2, schedule: { type: 'cosine', warmupSteps: 1 }, ...opts });
  const losses: number[] = [];
  const counts: number[] = [];
  while (run.step < until) {
    const ids = [batch(run, 2), batch(run, 2)];
    const r = await run.trainStep(ids.map((x) => ({ loss: () => nextTokenLoss(model.forward(x), x) })), { tokens: 32 });
    tf.dispose(ids);
    losses.push(r.loss);
    counts.push(tf.memory().numTensors);
  }
  return { run, losses, counts };
}

test('a run writes metrics.jsonl, checkpoints (keeping the last 2) and a chart; tensor count stays flat', async () => {
  const model = await loadQwen3(fixture);
  const runDir = path.join(tmp, 'full');
  const { run, losses, counts } = await train(model, { runDir, config: { purpose: 'test' } }, 6);
  const { chart, checkpoint } = await run.finish();
  assert.is(losses.length, 6);
  assert.equal(new Set(counts.slice(1)).size, 1, `numTensors per step: ${counts}`);
  const rows = run.metrics.rows();
  assert.equal(rows.map((r) => r.step), [1, 2, 3, 4, 5, 6]);
  for (const r of rows) for (const k of ['lr', 'loss', 'grad_norm', 'tokens_per_s']) assert.type(r[k], 'number', k);
  assert.is(rows[0].lr, 0, 'warmup starts at 0');
  assert.equal(listCheckpoints(runDir).map((d) => path.basename(d)), ['step-000004', 'step-000006']);
  assert.equal(fs.readdirSync(checkpoint).sort(), ['model', 'optimizer', 'trainer_state.json']);
  const svg = fs.readFileSync(chart, 'utf8');
  assert.ok(svg.startsWith('<svg') && svg.includes('loss') && svg.includes('grad_norm'));
  assert.equal(JSON.parse(fs.readFileSync(path.join(runDir, 'config.json'), 'utf8')), { purpose: 'test' });
  assert.ok(losses[5] < losses[0], `loss falls: ${losses}`);
  run.dispose();
  model.dispose();
});

test('resume: the steps after resuming have exactly the losses of the uninterrupted run (LoRA with dropout too)', async () => {
  for (const lora of [false, true]) {
    const make = async () => {
      const m = await loadQwen3(fixture);
      if (lora) addLora(m, { r: 2, alpha: 4, dropout: 0.1, targetModules: ['q_proj', 'down_proj'], seed: 9 });
      m.training = true;
      return m;
    };
    const a = await make();
    const straight = await train(a, { runDir: path.join(tmp, `straight-${lora}`) }, 6);
    const b = await make();
    const first = await train(b, { runDir: path.join(tmp, `resumed-${lora}`) }, 4);
    first.run.dispose();
    b.dispose();
    const c = await make(); // a fresh process would start from the same files
    const second = await train(c, { runDir: path.join(tmp, `resumed-${lora}`), resume: true }, 6);
    assert.equal([...first.losses, ...second.losses], straight.losses, `lora=${lora}`);
    assert.equal(second.run.metrics.rows().map((r) => r.step), [1, 2, 3, 4, 5, 6]);
    straight.run.dispose();
    second.run.dispose();
    a.dispose();
    c.dispose();
  }
});

test('a new run refuses a used folder, touching nothing; with overwrite it drops the old run, so a later resume cannot pick it up', async () => {
  const model = await loadQwen3(fixture);
  const runDir = path.join(tmp, 'reused');
  const first = await train(model, { runDir }, 6);
  first.run.dispose();
  assert.is(path.basename(latestCheckpoint(runDir)!), 'step-000006');
  const before = fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8');
  try {
    await train(model, { runDir, saveEvery: 2 }, 2);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, RunDirError);
    assert.match((err as Error).message, /is not empty .*--resume continues the run there, --overwrite replaces it/);
  }
  assert.is(fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8'), before);
  assert.is(path.basename(latestCheckpoint(runDir)!), 'step-000006');
  const second = await train(model, { runDir, saveEvery: 2, overwrite: true }, 2);
  assert.equal(listCheckpoints(runDir).map((d) => path.basename(d)), ['step-000002']);
  assert.equal(second.run.metrics.rows().map((r) => r.step), [1, 2]);
  second.run.dispose();
  model.dispose();
});

test('a crash while saving leaves the previous checkpoint complete and loadable', async () => {
  const model = await loadQwen3(fixture);
  const runDir = path.join(tmp, 'crash');
  const head = tf.variable(tf.ones([4]));
  const { run } = await train(model, { runDir, extra: new Map([['head.weight', head]]) }, 2);
  const good = latestCheckpoint(runDir)!;
  // A killed save leaves a hidden .tmp- folder behind; and the next save fails half way.
  fs.mkdirSync(path.join(runDir, 'checkpoints', '.tmp-step-000003-99999', 'model'), { recursive: true });
  const weights = new Map([...model.namedParameters()].map(([n, v]) => [n, v.clone()]));
  head.dispose();
  try {
    await run.checkpoint();
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /disposed/);
  }
  assert.is(latestCheckpoint(runDir), good);
  assert.equal(fs.readdirSync(path.join(runDir, 'checkpoints')), ['step-000002']);
  const fresh = await loadQwen3(fixture);
  const head2 = tf.variable(tf.zeros([4]));
  const state = restoreCheckpoint(good, { model: fresh, extra: new Map([['head.weight', head2]]), optimizer: run.optimizer });
  assert.is(state.step, 2);
  for (const [n, v] of fresh.namedParameters()) assert.is(maxAbsDiff(v.dataSync(), weights.get(n)!.dataSync()), 0, n);
  assert.equal(Array.from(head2.dataSync()), [1, 1, 1, 1]);
  run.dispose();
  tf.dispose([...weights.values(), head2]);
  model.dispose();
  fresh.dispose();
});

test('a NaN loss stops with the step and the last good checkpoint named; "skip" leaves the weights alone', async () => {
  const model = await loadQwen3(fixture);
  const runDir = path.join(tmp, 'nan');
  const { run } = await train(model, { runDir }, 2);
  const nan = { loss: () => tf.scalar(NaN).add(tf.sum(model.namedParameters().get('model.norm.weight')!)) as tf.Scalar };
  try {
    await run.trainStep([nan]);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, NonFiniteError);
    assert.match((err as Error).message, /^step 3: loss NaN, gradient norm 5\.65\d+; training stopped\. Last good checkpoint: .*step-000002$/);
  }
  run.dispose();
  const skipping = await TrainingRun.start({ model, runDir: path.join(tmp, 'skip'), lr: 1e-2, totalSteps: 3, seed: 1, quiet: true, onNonFinite: 'skip' });
  const before = model.namedParameters().get('model.norm.weight')!.dataSync().slice();
  const r = await skipping.trainStep([nan]);
  assert.ok(r.skipped);
  assert.equal(model.namedParameters().get('model.norm.weight')!.dataSync(), before);
  assert.is(skipping.metrics.rows()[0].skipped, true);
  skipping.dispose();
  model.dispose();
});

test('accumulating two weighted micro-batches gives the update of one batch holding both', async () => {
  const ids = tf.tensor2d([[1, 5, 9, 2, 7, 3], [4, 4, 8, 0, 1, 6]], [2, 6], 'int32');
  const rowsOf = (i: number) => ids.slice([i, 0], [1, 6]) as tf.Tensor2D;
  const results: Float32Array[] = [];
  for (const split of [false, true]) {
    const model = await loadQwen3(fixture);
    const run = await TrainingRun.start({ model, runDir: path.join(tmp, `acc-${split}`), lr: 1e-2, totalSteps: 1, seed: 1, quiet: true, schedule: { type: 'constant' } });
    await run.trainStep(split ? [0, 1].map((i) => ({ loss: () => nextTokenLoss(model.forward(rowsOf(i)), rowsOf(i)), weight: 0.5 })) : [{ loss: () => nextTokenLoss(model.forward(ids), ids) }]);
    results.push(model.namedParameters().get('model.layers.1.mlp.up_proj.weight')!.dataSync() as Float32Array);
    run.dispose();
    model.dispose();
  }
  assert.ok(maxAbsDiff(results[0], results[1]) < 1e-6, `max |diff| ${maxAbsDiff(results[0], results[1])}`);
});

test('a parameter holding NaN is never saved: checkpoint and finish stop with the step and the tensor named', async () => {
  const model = await loadQwen3(fixture);
  const runDir = path.join(tmp, 'nan-weights');
  const { run } = await train(model, { runDir, saveEvery: 1 }, 1);
  const [name, v] = [...model.trainableParameters()][0];
  v.assign(v.mul(NaN) as tf.Tensor);
  for (const save of [() => run.checkpoint(), () => run.finish()]) {
    try {
      await save();
      assert.unreachable();
    } catch (err) {
      assert.instance(err, NonFiniteError);
      assert.match((err as Error).message, new RegExp(`^step 1: parameter ${name.replace(/[.]/g, '\\.')} holds NaN or Inf; not saved\\. Last good checkpoint: .*step-000001$`));
    }
  }
  assert.equal(listCheckpoints(runDir).map((d) => path.basename(d)), ['step-000001']);
  run.dispose();
  model.dispose();
});

test.run();
