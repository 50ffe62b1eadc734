// Qwen3 speed and memory, ours (tfjs; wasm unless --backend says otherwise) beside PyTorch
// (bench/model_pytorch.py: Debian's python3-torch, 2 threads, on OpenBLAS when installed) on the
// same machine and configs. Not part of npm test.
//
//   npx tsx bench/model.ts [--quick] [--no-torch] [--backend wasm|cpu|tensorflow]
//
// Every case runs in its own process, so a case that runs out of memory (wasm stops at 4 GB)
// is reported without taking the others down, and peak RSS belongs to that case alone.
// Prints a table on stderr and one JSON line on stdout; ratios are ours / PyTorch in tokens/s
// (higher is better).
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { addLora, initBackend, loadQwen3, qwen3Config, Qwen3ForCausalLM, writeRandomQwen3, type Qwen3Preset } from '../src/index.js';

interface Case { config: Qwen3Preset; seq: number; mode: 'forward' | 'train' | 'load'; loraRank: number }
interface Result extends Case { tokensPerS?: number; seconds?: number; peakRssMb: number; error?: string }

const args = process.argv.slice(2);
const flag = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const backend = (flag('--backend') ?? 'wasm') as 'wasm';
const quick = args.includes('--quick');
const repeats = quick ? 1 : 3;
const rssMb = () => process.resourceUsage().maxRSS / 1024;

const big = (seq: number, mode: Case['mode'], loraRank: number): Case => ({ config: '0.6B', seq, mode, loraRank });
const CASES: Case[] = [
  ...[128, 512, 2048].flatMap((seq) => (['forward', 'train'] as const).map((mode): Case => ({ config: 'tiny', seq, mode, loraRank: 0 }))),
  big(0, 'load', 0),
  big(128, 'forward', 0),
  big(128, 'train', 8),
  big(512, 'train', 8),
].filter((c) => !quick || c.seq <= 512);

/** transformers' causal-LM loss, gathering target log-probs without a one-hot. */
function nextTokenLoss(logits: tf.Tensor3D, ids: tf.Tensor2D): tf.Scalar {
  const [B, T, V] = logits.shape;
  const logp = tf.logSoftmax(logits.slice([0, 0, 0], [B, T - 1, V]).reshape([-1, V]));
  const index = tf.range(0, B * (T - 1), 1, 'int32').mul(tf.scalar(V, 'int32')).add(ids.slice([0, 1], [B, T - 1]).reshape([-1]));
  return tf.gather(logp.reshape([-1]), index).mean().neg() as tf.Scalar;
}

/** A 0.6B-shaped BF16 checkpoint in 300 MB shards, written once (about 1.2 GB). */
async function bf16Checkpoint(): Promise<string> {
  const dir = path.join(os.tmpdir(), 'promedical-bench', 'qwen3-0.6B-bf16');
  if (!fs.existsSync(path.join(dir, 'model.safetensors.index.json'))) {
    await writeRandomQwen3(dir, qwen3Config('0.6B'), { dtype: 'bfloat16', maxShardBytes: 3e8 });
  }
  return dir;
}

/** One case, in this process (the child side). */
async function runCase(c: Case): Promise<Result> {
  await initBackend(backend, { log: () => {} });
  if (c.mode === 'load') {
    const dir = await bf16Checkpoint();
    const before = rssMb();
    const t0 = performance.now();
    const model = await loadQwen3(dir);
    const seconds = (performance.now() - t0) / 1000;
    model.dispose();
    return { ...c, seconds, peakRssMb: rssMb(), error: before > 1000 ? 'checkpoint was written in this process' : undefined };
  }
  const model = Qwen3ForCausalLM.random(qwen3Config(c.config), 0);
  if (c.loraRank > 0) addLora(model, { r: c.loraRank, alpha: 2 * c.loraRank, targetModules: ['q_proj', 'v_proj'], seed: 1 });
  const ids = tf.randomUniform([1, c.seq], 0, model.config.vocabSize, 'int32', 1) as tf.Tensor2D;
  const vars = model.trainableVariables();
  const step = async () => {
    if (c.mode === 'forward') {
      const logits = model.forward(ids);
      await logits.data();
      logits.dispose();
    } else {
      const { value, grads } = tf.variableGrads(() => nextTokenLoss(model.forward(ids), ids), vars);
      await value.data();
      tf.dispose([value, ...Object.values(grads)]);
    }
  };
  await step(); // warm-up
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    await step();
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  const seconds = times[Math.floor(times.length / 2)];
  return { ...c, tokensPerS: c.seq / seconds, seconds, peakRssMb: rssMb() };
}

/** The parent side: each case in a child process. */
function spawnCase(c: Case): Result {
  if (c.mode === 'load') spawnSync(process.execPath, [...process.execArgv, process.argv[1], '--prepare-load'], { stdio: 'inherit' });
  const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1], '--case', JSON.stringify(c), '--backend', backend, ...(quick ? ['--quick'] : [])], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  const last = child.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(last) as Result;
  } catch {
    // wasm prints its minified source before the error: take the error's own line.
    const why = (child.stderr.match(/^(?:RuntimeError|Error)[^\n]*|Aborted\(\)/m)?.[0] ?? `exit ${child.status}`).slice(0, 120);
    return { ...c, peakRssMb: NaN, error: why };
  }
}

interface TorchRow { config: string; seq: number; mode: string; lora_rank: number; tokens_per_s: number; peak_rss_mb: number }

function pytorch(cases: Case[]): { rows: TorchRow[]; meta: Record<string, unknown> } {
  const rows: TorchRow[] = [];
  let meta: Record<string, unknown> = {};
  for (const c of cases.filter((x) => x.mode !== 'load')) {
    try {
      const out = execFileSync('/usr/bin/python3', [
        'bench/model_pytorch.py', '--config', c.config, '--seq', String(c.seq), '--modes', c.mode,
        '--lora-rank', String(c.loraRank), '--repeats', String(repeats), '--threads', '2', '--skip-check',
      ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 24 });
      const json = JSON.parse(out.trim().split('\n').at(-1)!);
      meta = { torch: json.torch, threads: json.threads, blas: json.blas, sgemm_gflops: json.sgemm_gflops };
      rows.push(...json.results);
    } catch (err) {
      process.stderr.write(`[bench] PyTorch ${c.config} T=${c.seq} ${c.mode} failed: ${(err as Error).message.split('\n')[0]}\n`);
    }
  }
  return { rows, meta };
}

const key = (c: Case) => (c.mode === 'load' ? `load_${c.config.toLowerCase()}_bf16` : `${c.mode}_${c.config.toLowerCase()}_t${c.seq}${c.loraRank ? `_lora${c.loraRank}` : ''}`);

if (args.includes('--prepare-load')) {
  await initBackend('cpu', { log: () => {} });
  await bf16Checkpoint();
} else if (flag('--case')) {
  console.log(JSON.stringify(await runCase(JSON.parse(flag('--case')!) as Case)));
} else {
  const mine: Result[] = [];
  for (const c of CASES) {
    const r = spawnCase(c);
    process.stderr.write(`[bench] ours ${key(c)}: ${r.error ? `failed (${r.error})` : r.tokensPerS ? `${r.tokensPerS.toFixed(1)} tok/s` : `${r.seconds?.toFixed(1)} s`}, peak RSS ${r.peakRssMb.toFixed(0)} MB\n`);
    mine.push(r);
  }
  const torch = args.includes('--no-torch') ? { rows: [], meta: {} } : pytorch(CASES);
  const ratios: Record<string, number> = {};
  const lines = ['| case | ours tok/s (or s) | PyTorch tok/s | ours / PyTorch | ours peak RSS MB | PyTorch peak RSS MB |', '|---|---|---|---|---|---|'];
  for (const r of mine) {
    const t = torch.rows.find((x) => x.config === r.config && x.seq === r.seq && x.mode === r.mode && x.lora_rank === r.loraRank);
    const ratio = t && r.tokensPerS ? r.tokensPerS / t.tokens_per_s : NaN;
    if (Number.isFinite(ratio)) ratios[key(r)] = Number(ratio.toFixed(3));
    const ourCell = r.error ? `failed: ${r.error}` : r.tokensPerS ? r.tokensPerS.toFixed(1) : `${r.seconds!.toFixed(1)} s`;
    lines.push(`| ${key(r)} | ${ourCell} | ${t ? t.tokens_per_s.toFixed(1) : '-'} | ${Number.isFinite(ratio) ? ratio.toFixed(2) : '-'} | ${r.peakRssMb.toFixed(0)} | ${t ? t.peak_rss_mb.toFixed(0) : '-'} |`);
  }
  process.stderr.write(lines.join('\n') + '\n');
  console.log(JSON.stringify({ backend, pytorch: torch.meta, ours: mine, ratios }));
}
