// Generation speed of the bundled tiny Qwen3 (full 151,936-token vocabulary) by decoding mode:
// greedy, and sampling at temperature 1 with top-p 1 and top-k off (GRPO's rollouts), at batch 1
// and 8, 32 prompt tokens and 64 new ones per row (no stop ids, so every row makes all 64).
// Extra cases: top-p 0.95, top-k 20, min-p 0.05, repetition penalty 1.1 (greedy and sampled).
// Each case gets an untimed warm-up, then --reps rounds time every case once each (so a burst of
// load elsewhere on the machine hits one round, not every run of one case); the best run counts.
//
//   npx tsx bench/generate_sampling.ts [--reps 3] [--backend wasm] [--threads N|auto] [--cases greedy,sample,...]
//     [--generate FILE]   (times FILE's `generate` instead, e.g. an older src/model/generate.ts, for before/after)
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { ensureTinyQwen3, generate as ours, initBackend, loadQwen3, type GenerateOptions } from '../src/index.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const reps = Number(flag('--reps', '3'));
const threads = flag('--threads', 'auto');
await initBackend(flag('--backend', 'wasm') as 'wasm', { log: () => {}, wasmThreads: threads === 'auto' ? 'auto' : Number(threads) });

const NEW = 64;
const PROMPT = 32;
const CASES: Record<string, Omit<GenerateOptions, 'maxNewTokens'>> = {
  greedy: {},
  sample: { temperature: 1, seed: 0 },
  top_p_0_95: { temperature: 1, topP: 0.95, seed: 0 },
  top_k_20: { temperature: 1, topK: 20, seed: 0 },
  min_p_0_05: { temperature: 1, minP: 0.05, seed: 0 },
  greedy_rep_1_1: { repetitionPenalty: 1.1 },
  sample_rep_1_1: { temperature: 1, repetitionPenalty: 1.1, seed: 0 },
};
const other = flag('--generate', '');
const generate: typeof ours = other ? (await import(pathToFileURL(path.resolve(other)).href)).generate : ours;
const names = flag('--cases', Object.keys(CASES).join(',')).split(',');
for (const n of names) if (!(n in CASES)) throw new Error(`unknown case ${n}; use some of ${Object.keys(CASES).join(', ')}`);

const model = await loadQwen3(await ensureTinyQwen3());
const V = model.config.vocabSize;
const runs = names.flatMap((name) =>
  [1, 8].map((batch) => ({
    name,
    batch,
    prompts: Array.from({ length: batch }, (_, b) => Array.from({ length: PROMPT }, (_, t) => (b * 7919 + t * 104729) % V)),
    opts: { maxNewTokens: NEW, stopTokenIds: [], ...CASES[name] } as GenerateOptions,
    best: Infinity,
  })),
);
for (const r of runs) await generate(model, r.prompts, { ...r.opts, maxNewTokens: 4 });
for (let rep = 0; rep < reps; rep++) {
  for (const r of runs) {
    const t0 = performance.now();
    const out = await generate(model, r.prompts, r.opts);
    r.best = Math.min(r.best, (performance.now() - t0) / 1000);
    if (out.some((row) => row.length !== NEW)) throw new Error(`${r.name}: a row stopped early`);
  }
}
const results = runs.map((r) => ({ case: r.name, batch: r.batch, tokens_per_s: Number(((r.batch * NEW) / r.best).toFixed(1)), seconds: Number(r.best.toFixed(3)) }));
model.dispose();
const table = ['| case | batch | tokens/s | seconds |', '|---|---|---|---|', ...results.map((r) => `| ${r.case} | ${r.batch} | ${r.tokens_per_s} | ${r.seconds} |`)];
process.stderr.write(`${table.join('\n')}\n`);
console.log(JSON.stringify({ backend: tf.getBackend(), threads, generate: other || 'src/model/generate.ts', prompt_tokens: PROMPT, new_tokens: NEW, reps, results }));
