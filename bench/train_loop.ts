// The shared training loop on the bundled tiny Qwen3 (full 151,936-token vocabulary): next-token
// loss on a few sentences, 2 micro-batches per step, AdamW + cosine schedule + clipping,
// checkpoints. Measures steps/s, tokens/s and memory over the run, and renders the curves
// (bench/train_loop.svg, shown in docs/training.md).
//
//   npx tsx bench/train_loop.ts [--steps 40] [--backend wasm]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ensureTinyQwen3, initBackend, loadQwen3, loadTokenizer, renderChart, TrainingRun } from '../src/index.js';
import { targetPositions } from '../src/train/sft.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const steps = Number(flag('--steps', '40'));
await initBackend(flag('--backend', 'wasm') as 'wasm', { log: () => {} });

const SENTENCES = [
  'Chest pain that spreads to the arm or jaw needs emergency care: call your local emergency number.',
  'Adults should not take more than 4 grams of acetaminophen in 24 hours.',
  'A fever above 38 degrees Celsius in an infant younger than 3 months needs prompt medical review.',
  'Do not stop a prescribed anticoagulant without talking to the clinician who prescribed it.',
];
const dir = await ensureTinyQwen3();
const tok = loadTokenizer(dir);
const model = await loadQwen3(dir);
const T = 24;
const rows = SENTENCES.map((s) => {
  const ids = tok.encode(s).slice(0, T);
  return [...ids, ...Array(T - ids.length).fill(tok.padTokenId)];
});
const masks = SENTENCES.map((s) => Array.from({ length: T }, (_, i) => (i < Math.min(T, tok.encode(s).length) ? 1 : 0)));

const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-train-loop-'));
const run = await TrainingRun.start({ model, runDir, lr: 3e-3, totalSteps: steps, seed: 0, saveEvery: 20, schedule: { type: 'cosine', warmupSteps: 4 }, label: 'tiny LM' });
const counts: number[] = [];
const t0 = performance.now();
while (!run.done) {
  const micro = [0, 1].map(() => {
    const pick = [run.rng.int(rows.length), run.rng.int(rows.length)];
    const ids = tf.tensor2d(pick.map((i) => rows[i]), [2, T], 'int32');
    // Every real token after the first is a target (rows are right padded, so no attention mask).
    const at = targetPositions(pick.map((i) => rows[i]), pick.map((i) => masks[i]));
    return { ids, at };
  });
  await run.trainStep(micro.map(({ ids, at }) => ({ loss: () => model.targetLogProbs(ids, { targets: at }).logp.mean().neg() as tf.Scalar })), { tokens: 4 * T });
  tf.dispose(micro.flatMap((m) => [m.ids, m.at.rows, m.at.ids]));
  counts.push(tf.memory().numTensors);
}
const seconds = (performance.now() - t0) / 1000;
const { chart } = await run.finish({ title: `tiny Qwen3, next-token loss, ${steps} steps (${tf.getBackend()})` });
const out = new URL('./train_loop.svg', import.meta.url).pathname;
await renderChart(run.metrics.rows(), out, { title: `tiny Qwen3, next-token loss, ${steps} steps (${tf.getBackend()})`, metrics: ['loss', 'grad_norm', 'lr'] });
const rowsOut = run.metrics.rows();
const summary = {
  backend: tf.getBackend(),
  steps,
  seconds: Number(seconds.toFixed(1)),
  steps_per_s: Number((steps / seconds).toFixed(3)),
  tokens_per_s: Number(((steps * 4 * T) / seconds).toFixed(1)),
  loss_first: rowsOut[0].loss,
  loss_last: rowsOut.at(-1)!.loss,
  tensors_flat: new Set(counts.slice(1)).size === 1,
  peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
  run_dir: runDir,
  chart,
};
process.stderr.write(`| steps | seconds | tokens/s | loss first -> last | tensors flat | peak RSS MB |\n|---|---|---|---|---|---|\n| ${steps} | ${summary.seconds} | ${summary.tokens_per_s} | ${Number(summary.loss_first).toFixed(3)} -> ${Number(summary.loss_last).toFixed(3)} | ${summary.tensors_flat} | ${summary.peak_rss_mb} |\n`);
console.log(JSON.stringify(summary));
run.dispose();
