// Where a bench case's step spends its time on wasm: every kernel of the backend, the host reads
// and the heap allocations timed by wrappers, grouped by op kind, and each matMul shape with its
// achieved GFLOP/s. Not part of npm test.
//
//   npx tsx bench/profile.ts [--case train_tiny_t512|rm_tiny_b4_t256|train_0.6b_t512|all] [--steps N] [--threads N|auto]
//
// The step is bench/run.ts's step for the case (same model, LoRA, checkpointing, inputs, loss).
// Each case runs one warm-up step, N unwrapped steps (the bench's number), then N steps with the
// wrappers in place. Times are exclusive: a malloc or read inside a kernel counts as allocation or
// host read, not as that kernel; "engine" is the wall time no wrapper saw (tape, tidy, dispatch,
// JS between kernels). Tables (markdown) on stderr, one JSON line per case on stdout.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount, type BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { addLora, bradleyTerryLoss, FUSED_KERNELS, initBackend, qwen3Config, Qwen3ForCausalLM } from '../src/index.js';

const CASES = ['train_tiny_t512', 'rm_tiny_b4_t256', 'train_0.6b_t512'] as const;
type CaseKey = (typeof CASES)[number];

const args = process.argv.slice(2);
const flag = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const caseArg = flag('--case') ?? 'all';
const threadsArg = flag('--threads') ?? 'auto';
const threads: number | 'auto' = threadsArg === 'auto' ? 'auto' : Number(threadsArg);

// ---- op kinds ----

const KINDS: [string, string[]][] = [
  ['matmul', ['BatchMatMul', '_FusedMatMul', 'Conv2D', 'FusedConv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter']],
  ['elementwise', ['Add', 'AddN', 'Sub', 'Multiply', 'RealDiv', 'Reciprocal', 'Erf', 'Expm1', 'FloorDiv', 'Exp', 'Log', 'Log1p', 'Neg', 'Sqrt', 'Rsqrt', 'Square', 'SquaredDifference',
    'Sigmoid', 'Relu', 'Relu6', 'Elu', 'LeakyRelu', 'Prelu', 'Tanh', 'Softplus', 'Abs', 'Sign', 'Step', 'Floor', 'Ceil', 'Round', 'Cast', 'Maximum',
    'Minimum', 'Pow', 'Select', 'Greater', 'GreaterEqual', 'Less', 'LessEqual', 'Equal', 'NotEqual', 'LogicalAnd', 'LogicalOr', 'LogicalNot',
    'Sin', 'Cos', 'ClipByValue', 'IsNan', 'ZerosLike', 'OnesLike', 'Fill']],
  ['reductions', ['Sum', 'Max', 'Min', 'Mean', 'Prod', 'ArgMax', 'ArgMin', 'All', 'Any', 'Cumsum', 'Cumprod']],
  ['softmax-like', ['Softmax', 'LogSoftmax']],
  ['transposes', ['Transpose']],
  ['gathers/scatters', ['GatherV2', 'GatherNd', 'UnsortedSegmentSum', 'OneHot', 'ScatterNd', 'SparseToDense']],
  ['slices/concat/pad/tile', ['Slice', 'StridedSlice', 'Concat', 'Pack', 'Unpack', 'SplitV', 'Pad', 'PadV2', 'MirrorPad', 'Tile', 'Reverse', 'BroadcastTo']],
  ['reshape/identity', ['Reshape', 'Identity', 'ExpandDims', 'Squeeze']],
  ['fused (ours: RMSNorm backward, RoPE)', [...FUSED_KERNELS]],
];
const KIND_OF = new Map(KINDS.flatMap(([kind, names]) => names.map((n) => [n, kind] as const)));
const HOST_READS = 'host reads';
const ALLOCATION = 'allocation (malloc/free)';
const ENGINE = 'engine (rest)';

// ---- exclusive timers ----

interface Tally { ms: number; calls: number; flop: number }
const tallies = new Map<string, Tally>(); // kernel names, `host reads in <kernel>`, ALLOCATION
const shapes = new Map<string, Tally>(); // matMul shapes
/** The open timed regions, innermost last: their keys, and their children's time (subtracted from the parent). */
const open: string[] = [];
const childMs: number[] = [];

function add(map: Map<string, Tally>, key: string, ms: number, flop = 0): void {
  const t = map.get(key) ?? { ms: 0, calls: 0, flop: 0 };
  t.ms += ms;
  t.calls++;
  t.flop += flop;
  map.set(key, t);
}

/** Runs fn, charging its time minus that of nested timed regions to `key` (and `shape`). */
function timed<T>(key: string, fn: () => T, shape?: { key: string; flop: number }): T {
  const t0 = performance.now();
  open.push(key);
  childMs.push(0);
  try {
    return fn();
  } finally {
    const total = performance.now() - t0;
    open.pop();
    const self = total - childMs.pop()!;
    if (childMs.length) childMs[childMs.length - 1] += total;
    add(tallies, key, self);
    if (shape) add(shapes, shape.key, self, shape.flop);
  }
}

/** What one timed region costs by itself (two clock reads and the bookkeeping), in ms. Times the
 * timed calls per step it is the wrappers' overhead, which a wrapped-vs-unwrapped comparison of
 * step times cannot resolve on a shared machine. */
function timerCostMs(): number {
  const n = 100_000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) timed('timer cost', () => 0);
  return (performance.now() - t0) / n;
}

/** (batch, M, K, N, transposeA, transposeB) of a matMul kernel call, and its flops. */
function matMulShape(inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap | undefined): { key: string; flop: number } | undefined {
  const { a, b } = inputs as { a?: tf.TensorInfo; b?: tf.TensorInfo };
  if (!a || !b) return undefined;
  const tA = Boolean(attrs?.transposeA);
  const tB = Boolean(attrs?.transposeB);
  const [ra, rb] = [a.shape.length, b.shape.length];
  const M = a.shape[tA ? ra - 1 : ra - 2];
  const K = a.shape[tA ? ra - 2 : ra - 1];
  const N = b.shape[tB ? rb - 2 : rb - 1];
  const batch = Math.max(tf.util.sizeFromShape(a.shape.slice(0, -2)), tf.util.sizeFromShape(b.shape.slice(0, -2)));
  return { key: `${batch},${M},${K},${N},${tA ? 'T' : 'N'},${tB ? 'T' : 'N'}`, flop: 2 * batch * M * K * N };
}

/** Re-registers every wasm kernel behind a timer (setup and dispose hooks kept: tfjs binds the
 * wasm functions in setupFunc, which already ran when the backend started). */
function wrapKernels(): void {
  for (const k of tf.getKernelsForBackend('wasm')) {
    const inner = k.kernelFunc;
    const isMatMul = KIND_OF.get(k.kernelName) === 'matmul';
    tf.unregisterKernel(k.kernelName, 'wasm');
    tf.registerKernel({
      ...k,
      kernelFunc: (a) => timed(k.kernelName, () => inner(a), isMatMul ? matMulShape(a.inputs, a.attrs) : undefined),
    });
  }
}

interface EmscriptenHeap { _malloc: (n: number) => number; _free: (p: number) => void }

/** Times the backend's host reads (read calls readSync) and the heap's malloc / free. */
function wrapHostSide(): void {
  const backend = tf.backend() as BackendWasm;
  const readSync = backend.readSync.bind(backend);
  // Named after the kernel they happen in (tfjs' wasm kernels read some inputs on the host).
  backend.readSync = (dataId, start, end) => timed(`${HOST_READS} in ${open.at(-1) ?? 'engine'}`, () => readSync(dataId, start, end));
  // Wrapped after the warm-up step: emscripten's first-call stubs have replaced themselves by then.
  const heap = backend.wasm as unknown as EmscriptenHeap;
  const malloc = heap._malloc;
  const free = heap._free;
  heap._malloc = (n) => timed(ALLOCATION, () => malloc(n));
  heap._free = (p) => timed(ALLOCATION, () => free(p));
}

// ---- the bench step (as bench/run.ts's runCase) ----

/** The library's causal-LM training loss, as bench/run.ts: every token after the first, fused LM head. */
function causalLmLoss(model: Qwen3ForCausalLM, ids: tf.Tensor2D): tf.Scalar {
  return model.targetLogProbs(ids, { targets: { lastTokens: ids.shape[1] - 1 } }).logp.mean().neg() as tf.Scalar;
}

/** One training step of the case: loss, gradients, the loss read back (bench/run.ts's step). */
function benchStep(key: CaseKey): () => Promise<void> {
  const big = key === 'train_0.6b_t512';
  const rm = key === 'rm_tiny_b4_t256';
  const model = Qwen3ForCausalLM.random(qwen3Config(big ? '0.6B' : 'tiny'), 0);
  if (big) addLora(model, { r: 8, alpha: 16, targetModules: ['q_proj', 'v_proj'], seed: 1 });
  model.gradientCheckpointing = big;
  const pairs = 4;
  const seq = rm ? 256 : 512;
  const rows = rm ? 2 * pairs : 1;
  const ids = tf.randomUniform([rows, seq], 0, model.config.vocabSize, 'int32', 1) as tf.Tensor2D;
  const vars = model.trainableVariables();
  const head = tf.variable(tf.randomNormal([1, model.config.hiddenSize], 0, 0.02, 'float32', 2), true, 'score.head');
  const loss = rm
    ? () => {
        const h = model.hiddenStates(ids);
        const last = h.slice([0, seq - 1, 0], [rows, 1, -1]).reshape([rows, -1]);
        const r = tf.matMul(head, last, false, true).reshape([rows]) as tf.Tensor1D;
        return bradleyTerryLoss(r.slice(0, pairs), r.slice(pairs, pairs));
      }
    : () => causalLmLoss(model, ids);
  return async () => {
    const { value, grads } = tf.variableGrads(loss, rm ? [...vars, head] : vars);
    await value.data();
    tf.dispose([value, ...Object.values(grads)]);
  };
}

async function timeSteps(step: () => Promise<void>, n: number): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await step();
    ms.push(performance.now() - t0);
  }
  return ms;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** One row of a table: an op kind or a kernel name. */
interface Row { name: string; ms: number; share: number; calls: number }
interface ShapeRow { shape: string; calls: number; ms: number; gflops: number }
interface Profile { case: CaseKey; steps: number; threads: number; unwrappedMs: number[]; wrappedMs: number[]; wrapperMs: number; kinds: Row[]; kernels: Row[]; matmuls: ShapeRow[] }

async function profileCase(key: CaseKey, steps: number): Promise<Profile> {
  await initBackend('wasm', { log: () => {}, wasmThreads: threads });
  const step = benchStep(key);
  await step(); // warm-up (XNNPACK operator caches, heap growth)
  const unwrappedMs = await timeSteps(step, steps);
  wrapKernels();
  wrapHostSide();
  const timerMs = timerCostMs();
  tallies.clear();
  shapes.clear();
  const wrappedMs = await timeSteps(step, steps);
  const wall = mean(wrappedMs);
  const perStep = (t: Tally) => ({ ms: t.ms / steps, calls: t.calls / steps });
  const kernels = [...tallies].map(([name, t]) => ({ name, ...perStep(t), share: t.ms / steps / wall })).sort((a, b) => b.ms - a.ms);
  const kinds = new Map<string, Row>();
  for (const k of kernels) {
    const kind = k.name.startsWith(HOST_READS) ? HOST_READS : k.name === ALLOCATION ? k.name : KIND_OF.get(k.name) ?? 'other';
    const r = kinds.get(kind) ?? { name: kind, ms: 0, share: 0, calls: 0 };
    r.ms += k.ms;
    r.share += k.share;
    r.calls += k.calls;
    kinds.set(kind, r);
  }
  const seen = [...kinds.values()].reduce((a, r) => a + r.ms, 0);
  const kindRows = [...kinds.values(), { name: ENGINE, ms: wall - seen, share: (wall - seen) / wall, calls: 0 }].sort((a, b) => b.ms - a.ms);
  const wrapperMs = timerMs * kernels.reduce((a, k) => a + k.calls, 0);
  const matmuls = [...shapes].map(([shape, t]) => ({ shape, ...perStep(t), gflops: t.flop / t.ms / 1e6 })).sort((a, b) => b.ms - a.ms);
  return { case: key, steps, threads: getThreadsCount(), unwrappedMs, wrappedMs, wrapperMs, kinds: kindRows, kernels, matmuls };
}

// ---- report ----

/** The CPU's name, family / model numbers (the name alone can be just "AMD EPYC") and vector flags. */
function cpuLine(): string {
  const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.+)$`, 'm').exec(info)?.[1]?.trim();
  const flags = new Set(field('flags')?.split(/\s+/) ?? []);
  const has = ['avx2', 'avx512f', 'fma'].map((f) => `${f} ${flags.has(f) ? 'yes' : 'no'}`).join(', ');
  return `${os.cpus()[0]?.model?.trim() ?? 'unknown'} (family ${field('cpu family')}, model ${field('model')}), ${os.availableParallelism()} cores, ${has}`;
}

function tables(p: Profile): string {
  const fmt = (x: number, d = 1) => x.toFixed(d);
  const lines = [
    `### ${p.case} (${p.steps} step${p.steps > 1 ? 's' : ''}; mean step ${fmt(mean(p.unwrappedMs), 0)} ms unwrapped, ${fmt(mean(p.wrappedMs), 0)} ms wrapped, of which the timers ${fmt(p.wrapperMs)} ms)`,
    '',
    '| op kind | ms/step | share | calls/step |',
    '|---|---|---|---|',
    ...p.kinds.map((r) => `| ${r.name} | ${fmt(r.ms)} | ${fmt(100 * r.share)}% | ${r.calls ? fmt(r.calls, 0) : '-'} |`),
    '',
    '| kernel (top 15) | ms/step | share | calls/step |',
    '|---|---|---|---|',
    ...p.kernels.slice(0, 15).map((r) => `| ${r.name} | ${fmt(r.ms)} | ${fmt(100 * r.share)}% | ${fmt(r.calls, 0)} |`),
    '',
    '| matMul (batch, M, K, N, tA, tB) | calls/step | ms/step | GFLOP/s |',
    '|---|---|---|---|',
    ...p.matmuls.slice(0, 10).map((r) => `| ${r.shape} | ${fmt(r.calls, 0)} | ${fmt(r.ms)} | ${fmt(r.gflops)} |`),
  ];
  return lines.join('\n');
}

if (caseArg === 'all') {
  // Each case in its own process (wasm memory only grows; 0.6B needs most of the 4 GB heap).
  for (const key of CASES) {
    const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1], ...args.filter((a, i) => a !== '--case' && args[i - 1] !== '--case'), '--case', key], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    if (child.status !== 0) process.stderr.write(`[profile] ${key} failed (exit ${child.status})\n`);
  }
} else {
  if (!(CASES as readonly string[]).includes(caseArg)) throw new Error(`--case must be one of ${CASES.join(', ')} or all`);
  const key = caseArg as CaseKey;
  // Defaults: bench/run.ts's timed runs for the case (the 0.2 s RM step needs more to settle).
  const steps = Number(flag('--steps') ?? { train_tiny_t512: 3, rm_tiny_b4_t256: 9, 'train_0.6b_t512': 1 }[key]);
  const p = await profileCase(key, steps);
  process.stderr.write(`CPU: ${cpuLine()}; wasm threads ${p.threads}\n\n${tables(p)}\n\n`);
  console.log(JSON.stringify({ cpu: cpuLine(), ...p }));
}
