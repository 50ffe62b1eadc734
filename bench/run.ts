// Qwen3 speed and memory, ours (tfjs; wasm unless --backend says otherwise) beside PyTorch
// (bench/model_pytorch.py: Debian's python3-torch, 2 threads, on OpenBLAS when installed) on the
// same machine and configs. Not part of npm test.
//
//   npm run bench [-- --quick] [--tiny] [--only KEYS] [--no-torch] [--backend wasm|cpu|tensorflow] [--threads N|auto]
//   (--quick: tiny cases up to T = 512, one timed run each; --tiny: every tiny case, no 0.6B)
//
// Cases: forward (full logits) and training (forward + next-token loss + backward, the library's
// path: the fused LM head) at T = 128 / 512 / 2048; greedy generation with the KV cache at batch 1
// and 8 (32 prompt tokens, 64 new), and sampled (temperature 1, top-p 1, top-k off: GRPO's
// rollouts; keys ..._t1); a whole GRPO step (2 prompts x G 8 completions of 64 tokens, beta 0, dapo;
// rollouts from tfjs or llama.cpp (F32 GGUF), split into rollout / logprobs / loss+backward / sync;
// ratios in steps/s) against bench/model_pytorch.py's --modes grpo; a reward-model Bradley-Terry step (4 pairs of 256 tokens, a
// tier head on the last token); a 0.6B-shaped model's load, forward and LoRA training.
// Every case runs in its own process, so a case that runs out of memory (wasm stops at 4 GB)
// is reported without taking the others down, and peak RSS belongs to that case alone.
// Prints a table on stderr and one JSON line on stdout; ratios are ours / PyTorch in tokens/s
// (higher is better).
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { addLora, bradleyTerryLoss, generate, initBackend, loadQwen3, loadTokenizer, qwen3Config, Qwen3ForCausalLM, writeRandomQwen3, type Qwen3Preset } from '../src/index.js';
import { grpoStepCase, GRPO_GENERATIONS, type GrpoSplit } from './grpo_step.js';

type Mode = 'forward' | 'train' | 'generate' | 'rm' | 'load' | 'grpo';
/** seq: tokens per sequence (generate: new tokens per row); batch: rows (rm: pairs). */
/** checkpointing: gradient checkpointing (layers recomputed in backprop) on both sides.
 * temperature: generate samples at it (0 / undefined: greedy). engine: grpo's rollout engine
 * (batch: prompts per step, seq: new tokens per completion). */
interface Case { config: Qwen3Preset; seq: number; mode: Mode; loraRank: number; batch: number; checkpointing?: boolean; temperature?: number; engine?: 'tfjs' | 'llama.cpp'; importanceSampling?: boolean; ggufDtype?: 'F32' | 'BF16' | 'Q8_0' }
/** grpo: seconds per step (median) and its split; promptTokens: the longest prompt (PyTorch's prompt length). */
interface Result extends Case { tokensPerS?: number; seconds?: number; peakRssMb: number; wasmHeapMb?: number; error?: string; split?: GrpoSplit; promptTokens?: number }

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(`Usage: npm run bench -- [--quick] [--tiny] [--only KEYS] [--no-torch] [--backend wasm|cpu|tensorflow] [--threads N|auto]
Qwen3 speed and memory, ours beside PyTorch (bench/model_pytorch.py) on the same machine and configs.
  --quick     tiny cases up to T = 512, one timed run each (about 5 minutes)
  --tiny      every tiny case, no 0.6B
  --only KEYS just these cases (JSON keys, e.g. train_tiny_t512,train_0.6b_t512,generate_tiny_b8_t1,
              grpo_step_tiny,grpo_step_tiny_llamacpp,grpo_step_tiny_llamacpp_is,grpo_step_0.6b,
              grpo_step_0.6b_llamacpp,grpo_step_0.6b_llamacpp_bf16,
              grpo_step_0.6b_llamacpp_q8_0)
  --no-torch  ours only
The full run takes about 30 minutes (the 0.6B GRPO step alone 10 or more). Prints a table on stderr and one JSON line on stdout; results
in bench/RESULTS.md.`);
  process.exit(0);
}
const flag = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const backend = (flag('--backend') ?? 'wasm') as 'wasm';
const threadsFlag = flag('--threads') ?? 'auto';
const threads: number | 'auto' = threadsFlag === 'auto' ? 'auto' : Number(threadsFlag);
const quick = args.includes('--quick');
/** --only KEY[,KEY...]: just these cases (keys as in the JSON, e.g. train_0.6b_t512). */
const only = flag('--only')?.split(',');
const repeats = quick ? 1 : 3;
/** Timed runs of a case after its warm-up: one for the slow 0.6B cases, three times as many for the
 * tiny cases of about 0.1 s (forward, RM step, generation), whose medians are noisy otherwise. */
const repeatsOf = (c: Case) => (c.config !== 'tiny' ? 1 : c.mode === 'train' || c.mode === 'grpo' || c.seq >= 2048 ? repeats : 3 * repeats);
/** Untimed GRPO steps first: one for tiny, none for 0.6B (a step takes minutes there). */
const grpoWarmup = (c: Case) => (c.config === 'tiny' ? 1 : 0);
const rssMb = () => process.resourceUsage().maxRSS / 1024;
const PROMPT = 32; // generate: prompt tokens per row (as bench/model_pytorch.py)

/** Ratio keys: train_tiny_t512, forward_tiny_t512, generate_tiny_b8, generate_tiny_b8_t1 (sampled),
 * rm_tiny_b4_t256, train_0.6b_t512 (LoRA r8), grpo_step_tiny, grpo_step_tiny_llamacpp(_is),
 * grpo_step_0.6b, grpo_step_0.6b_llamacpp(_bf16, _q8_0)... */
const key = (c: Case) => {
  const cfg = c.config.toLowerCase();
  if (c.mode === 'load') return `load_${cfg}_bf16`;
  if (c.mode === 'generate') return `generate_${cfg}_b${c.batch}${c.temperature ? `_t${c.temperature}` : ''}`;
  if (c.mode === 'grpo') return `grpo_step_${cfg}${c.engine === 'llama.cpp' ? '_llamacpp' : ''}${c.ggufDtype && c.ggufDtype !== 'F32' ? `_${c.ggufDtype.toLowerCase()}` : ''}${c.importanceSampling ? '_is' : ''}`;
  if (c.mode === 'rm') return `rm_${cfg}_b${c.batch}_t${c.seq}`;
  return `${c.mode}_${cfg}_t${c.seq}`;
};

const tiny = (mode: Mode, seq: number, batch = 1): Case => ({ config: 'tiny', seq, mode, loraRank: 0, batch });
// 0.6B training recomputes each layer in backprop: stored activations do not fit wasm's 4 GB.
const big = (mode: Mode, seq: number, loraRank = 0, batch = 1): Case => ({ config: '0.6B', seq, mode, loraRank, batch, checkpointing: mode === 'train' || mode === 'grpo' });
const sampled = (c: Case): Case => ({ ...c, temperature: 1 });
/** A GRPO step: 2 prompts x G completions of 64 new tokens. */
// llama.cpp's rollouts run without TRL's importance-sampling correction (an F32 GGUF samples the
// trainer's own distribution: log-probs within 1e-4), except in the `_is` case, which measures
// what the correction costs: node-llama-cpp sorts the vocabulary for each sampled token's log-prob.
// `_bf16` / `_q8_0`: llama.cpp on a BF16 or Q8_0 GGUF of the base weights (2 or about 1 byte per
// weight; the sampler's distribution is then near the trainer's, not equal).
const grpo = (c: Case, engine: 'tfjs' | 'llama.cpp', importanceSampling = false, ggufDtype: 'F32' | 'BF16' | 'Q8_0' = 'F32'): Case => ({ ...c, engine, importanceSampling, ggufDtype });
const CASES: Case[] = [
  ...[128, 512, 2048].flatMap((seq) => [tiny('forward', seq), tiny('train', seq)]),
  tiny('generate', 64, 1),
  tiny('generate', 64, 8),
  sampled(tiny('generate', 64, 1)),
  sampled(tiny('generate', 64, 8)),
  grpo(tiny('grpo', 64, 2), 'tfjs'),
  grpo(tiny('grpo', 64, 2), 'llama.cpp'),
  grpo(tiny('grpo', 64, 2), 'llama.cpp', true),
  tiny('rm', 256, 4),
  big('load', 0),
  big('forward', 128),
  big('train', 128, 8),
  big('train', 512, 8),
  big('generate', 16, 0, 1),
  sampled(big('generate', 16, 0, 1)),
  sampled(big('generate', 16, 0, 8)),
  grpo(big('grpo', 64, 8, 2), 'tfjs'),
  grpo(big('grpo', 64, 8, 2), 'llama.cpp'),
  grpo(big('grpo', 64, 8, 2), 'llama.cpp', false, 'BF16'),
  grpo(big('grpo', 64, 8, 2), 'llama.cpp', false, 'Q8_0'),
].filter((c) => (!quick || (c.config === 'tiny' && c.seq <= 512)) && (!args.includes('--tiny') || c.config === 'tiny') && (!only || only.includes(key(c))));

/** The library's causal-LM training loss: every token after the first, through the fused LM head. */
function causalLmLoss(model: Qwen3ForCausalLM, ids: tf.Tensor2D): tf.Scalar {
  return model.targetLogProbs(ids, { targets: { lastTokens: ids.shape[1] - 1 } }).logp.mean().neg() as tf.Scalar;
}

/** A 0.6B-shaped BF16 checkpoint in 300 MB shards, written once (about 1.2 GB). */
async function bf16Checkpoint(): Promise<string> {
  const dir = path.join(os.tmpdir(), 'promedical-bench', 'qwen3-0.6B-bf16');
  if (!fs.existsSync(path.join(dir, 'model.safetensors.index.json'))) {
    await writeRandomQwen3(dir, qwen3Config('0.6B'), { dtype: 'bfloat16', maxShardBytes: 3e8 });
  }
  return dir;
}

/** The CPU's model name (every figure says which machine it came from). */
function cpuModel(): string {
  const named = os.cpus()[0]?.model?.trim();
  if (named) return named;
  try {
    return /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The vector extensions that decide GEMM speed (from /proc/cpuinfo; empty elsewhere). */
function cpuFlags(): string[] {
  try {
    const flags = new Set(/^flags\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.split(/\s+/) ?? []);
    return ['sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512_bf16', 'amx_tile'].filter((f) => flags.has(f));
  } catch {
    return [];
  }
}

/** One case, in this process (the child side). */
async function runCase(c: Case): Promise<Result> {
  await initBackend(backend, { log: () => {}, wasmThreads: threads });
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
  model.gradientCheckpointing = c.checkpointing ?? false;
  if (c.mode === 'grpo') {
    const llamaThreads = typeof threads === 'number' ? threads : os.availableParallelism();
    const r = await grpoStepCase(model, loadTokenizer(), {
      engine: c.engine ?? 'tfjs', prompts: c.batch, newTokens: c.seq, warmup: grpoWarmup(c), steps: repeatsOf(c), checkpointing: c.checkpointing ?? false, llamaThreads,
      importanceSampling: c.importanceSampling ?? false, dtype: c.ggufDtype ?? 'F32',
    });
    model.dispose();
    return { ...c, ...r, peakRssMb: rssMb(), wasmHeapMb: wasmHeapMb() };
  }
  const V = model.config.vocabSize;
  const rows = c.mode === 'rm' ? 2 * c.batch : c.batch;
  const ids = tf.randomUniform([rows, c.seq], 0, V, 'int32', 1) as tf.Tensor2D;
  const vars = model.trainableVariables();
  const head = tf.variable(tf.randomNormal([1, model.config.hiddenSize], 0, 0.02, 'float32', 2), true, 'score.head');
  const prompts = Array.from({ length: c.batch }, (_, b) => Array.from({ length: PROMPT }, (_, t) => (b * 7919 + t * 104729) % V));
  const step = async () => {
    if (c.mode === 'forward') {
      const logits = model.forward(ids);
      await logits.data();
      logits.dispose();
    } else if (c.mode === 'generate') {
      await generate(model, prompts, { maxNewTokens: c.seq, temperature: c.temperature ?? 0, topP: 1, topK: 0, stopTokenIds: [], seed: 0 });
    } else {
      const loss = c.mode === 'train'
        ? () => causalLmLoss(model, ids)
        : () => {
            // A tier head on each sequence's last token; rows 0..B-1 chosen, B..2B-1 rejected.
            const h = model.hiddenStates(ids);
            const last = h.slice([0, c.seq - 1, 0], [rows, 1, -1]).reshape([rows, -1]);
            const r = tf.matMul(head, last, false, true).reshape([rows]) as tf.Tensor1D;
            return bradleyTerryLoss(r.slice(0, c.batch), r.slice(c.batch, c.batch));
          };
      const { value, grads } = tf.variableGrads(loss, c.mode === 'rm' ? [...vars, head] : vars);
      await value.data();
      tf.dispose([value, ...Object.values(grads)]);
    }
  };
  await step(); // warm-up
  const times: number[] = [];
  for (let r = 0; r < repeatsOf(c); r++) {
    const t0 = performance.now();
    await step();
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  const seconds = times[Math.floor(times.length / 2)];
  return { ...c, tokensPerS: (rows * c.seq) / seconds, seconds, peakRssMb: rssMb(), wasmHeapMb: wasmHeapMb() };
}

/** wasm memory only grows: its size at the end is the peak of the tfjs heap. */
const wasmHeapMb = () => (tf.getBackend() === 'wasm' ? ((tf.backend() as BackendWasm).wasm as unknown as { HEAPU8: Uint8Array }).HEAPU8.length / 2 ** 20 : undefined);

/** The parent side: each case in a child process. */
function spawnCase(c: Case): Result {
  if (c.mode === 'load') spawnSync(process.execPath, [...process.execArgv, process.argv[1], '--prepare-load'], { stdio: 'inherit' });
  const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1], '--case', JSON.stringify(c), '--backend', backend, '--threads', String(threads), ...(quick ? ['--quick'] : [])], {
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

interface TorchRow {
  config: string; seq: number; batch: number; mode: string; lora_rank: number; tokens_per_s: number; peak_rss_mb: number; temperature?: number;
  /** grpo rows: the step's median seconds and its split; old_logprobs: the no-grad pass of an engine's rollouts. */
  seconds_median: number; old_logprobs?: boolean; rollout_s?: number; logprobs_s?: number; loss_s?: number; sync_s?: number;
}

/** PyTorch's extra arguments for a case: sampling, and a GRPO step shaped as ours (prompt
 * length, G, micro-batch, the old log-probs pass where ours has one: engine rollouts). */
const torchArgs = (r: Result): string[] => {
  if (r.mode === 'generate') return r.temperature ? ['--temperature', String(r.temperature)] : [];
  if (r.mode !== 'grpo') return [];
  return ['--temperature', '1', '--grpo-generations', String(GRPO_GENERATIONS), '--grpo-prompt-len', String(r.promptTokens ?? PROMPT), '--grpo-micro-batch', '4',
    '--grpo-warmup', String(grpoWarmup(r)), ...(r.importanceSampling ? ['--grpo-old-logprobs'] : [])];
};

/** The PyTorch row of our result `r`, if it ran. */
const torchRowOf = (rows: TorchRow[], r: Result) => rows.find((x) => x.config === r.config && x.seq === r.seq && x.mode === r.mode && x.lora_rank === r.loraRank && x.batch === r.batch
  && (x.temperature ?? 0) === (r.mode === 'grpo' ? 1 : r.temperature ?? 0) && (r.mode !== 'grpo' || x.old_logprobs === (r.importanceSampling ?? false)));

function pytorch(cases: Result[]): { rows: TorchRow[]; meta: Record<string, unknown> } {
  const rows: TorchRow[] = [];
  let meta: Record<string, unknown> = {};
  const ran = new Set<string>(); // cases that differ only in our engine share one PyTorch run
  for (const c of cases.filter((x) => x.mode !== 'load')) {
    const argv = [
      'bench/model_pytorch.py', '--config', c.config, '--seq', String(c.seq), '--modes', c.mode, '--batch', String(c.batch),
      '--lora-rank', String(c.loraRank), '--repeats', String(repeatsOf(c)), '--threads', '2', '--skip-check', ...(c.checkpointing ? ['--gradient-checkpointing'] : []),
      ...torchArgs(c),
    ];
    if (ran.has(argv.join(' '))) continue;
    ran.add(argv.join(' '));
    try {
      const out = execFileSync('/usr/bin/python3', argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 24 });
      const json = JSON.parse(out.trim().split('\n').at(-1)!);
      meta = { torch: json.torch, threads: json.threads, blas: json.blas, sgemm_gflops: json.sgemm_gflops };
      rows.push(...json.results);
    } catch (err) {
      process.stderr.write(`[bench] PyTorch ${c.config} T=${c.seq} ${c.mode} failed: ${(err as Error).message.split('\n')[0]}\n`);
    }
  }
  return { rows, meta };
}


if (args.includes('--prepare-load')) {
  await initBackend('cpu', { log: () => {} });
  await bf16Checkpoint();
} else if (flag('--case')) {
  console.log(JSON.stringify(await runCase(JSON.parse(flag('--case')!) as Case)));
} else {
  const mine: Result[] = [];
  for (const c of CASES) {
    const r = spawnCase(c);
    process.stderr.write(`[bench] ours ${key(c)}: ${r.error ? `failed (${r.error})` : r.mode !== 'grpo' && r.tokensPerS ? `${r.tokensPerS.toFixed(1)} tok/s` : `${r.seconds?.toFixed(2)} s`}, peak RSS ${r.peakRssMb.toFixed(0)} MB\n`);
    mine.push(r);
  }
  const torch = args.includes('--no-torch') ? { rows: [], meta: {} } : pytorch(mine);
  const ratios: Record<string, number> = {};
  const lines = ['| case | ours tok/s (or s) | PyTorch tok/s (or s) | ours / PyTorch | ours peak RSS MB | ours wasm heap MB | PyTorch peak RSS MB |', '|---|---|---|---|---|---|---|'];
  /** A GRPO step's cell: seconds, then rollout / logprobs / loss+backward+step / sync. */
  const stepCell = (s: number, p: GrpoSplit) => `${s.toFixed(2)} s (${[p.rollout, p.logprobs, p.loss, p.sync].map((x) => x.toFixed(2)).join(' / ')})`;
  for (const r of mine) {
    const t = torchRowOf(torch.rows, r);
    // GRPO: steps/s, i.e. PyTorch's seconds over ours.
    const ratio = !t || r.error ? NaN : r.mode === 'grpo' ? t.seconds_median / r.seconds! : r.tokensPerS ? r.tokensPerS / t.tokens_per_s : NaN;
    if (Number.isFinite(ratio)) ratios[key(r)] = Number(ratio.toFixed(3));
    const ourCell = r.error ? `failed: ${r.error}` : r.split ? stepCell(r.seconds!, r.split) : r.tokensPerS ? r.tokensPerS.toFixed(1) : `${r.seconds!.toFixed(1)} s`;
    const torchCell = !t ? '-' : r.mode === 'grpo' ? stepCell(t.seconds_median, { rollout: t.rollout_s!, logprobs: t.logprobs_s!, loss: t.loss_s!, sync: t.sync_s! }) : t.tokens_per_s.toFixed(1);
    const name = `${key(r)}${r.loraRank ? ` (LoRA r${r.loraRank})` : ''}${r.checkpointing ? ' (checkpointing)' : ''}`;
    lines.push(`| ${name} | ${ourCell} | ${torchCell} | ${Number.isFinite(ratio) ? ratio.toFixed(2) : '-'} | ${r.peakRssMb.toFixed(0)} | ${r.wasmHeapMb?.toFixed(0) ?? '-'} | ${t ? t.peak_rss_mb.toFixed(0) : '-'} |`);
  }
  process.stderr.write(lines.join('\n') + '\n');
  console.log(JSON.stringify({ cpu: cpuModel(), cpu_flags: cpuFlags(), cores: os.availableParallelism(), backend, threads, pytorch: torch.meta, ours: mine, ratios }));
}
