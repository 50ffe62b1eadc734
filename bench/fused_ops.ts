// The decoder's elementwise ops, forward + backward, at the shapes of the bench's models: ours
// (src/ops/layers.ts: custom ops with hand-written gradients, one-pass kernels where they measured
// faster) against the same math as plain tfjs ops differentiated by tfjs' autodiff (what
// layers.ts computed before). Each case: an untimed warm-up, then --reps rounds of --n calls of
// tf.grads on each side in turn; the best round counts. Also the memory held between the forward
// and the backward pass (tf.memory() bytes after the forward, inside the gradient's scope: what a
// training step keeps per op until its backward). Prints a table on stderr and one JSON line on
// stdout.
//
//   npx tsx bench/fused_ops.ts [--reps 3] [--n 10] [--backend wasm] [--threads N|auto]
import * as tf from '@tensorflow/tfjs';
import { applyRope, initBackend, rmsNorm, swiglu } from '../src/index.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const reps = Number(flag('--reps', '3'));
const n = Number(flag('--n', '10'));
const threads = flag('--threads', 'auto');
const info = await initBackend(flag('--backend', 'wasm') as 'wasm', { log: () => {}, wasmThreads: threads === 'auto' ? 'auto' : Number(threads) });

type Op = (inputs: tf.Tensor[]) => tf.Tensor;
const EPS = 1e-6;
/** The formulas as layers.ts wrote them before its custom ops. */
const AUTODIFF: Record<string, Op> = {
  rmsnorm: ([x, w]) => x.mul(tf.rsqrt(x.square().mean(-1, true).add(EPS))).mul(w),
  swiglu: ([g, u]) => g.mul(tf.sigmoid(g)).mul(u),
  rope: ([x, cos, sin]) => {
    const [x1, x2] = tf.split(x, 2, 3);
    return x.mul(cos).add(tf.concat([x2.neg(), x1], 3).mul(sin));
  },
};
const OURS: Record<string, Op> = {
  rmsnorm: ([x, w]) => rmsNorm(x, w, EPS),
  swiglu: ([g, u]) => swiglu(g, u),
  rope: ([x, cos, sin]) => applyRope(x as tf.Tensor4D, cos as tf.Tensor4D, sin as tf.Tensor4D),
};
/** Which inputs take a gradient (RoPE's tables do not). */
const GRAD_INPUTS: Record<string, number> = { rmsnorm: 2, swiglu: 2, rope: 1 };

// Shapes: tiny train (512 tokens, hidden 64, 4 heads / 2 KV heads of 32, MLP 192), the RM step
// (8 rows x 256), 0.6B at 512 tokens (hidden 1024, 16 / 8 heads of 128, MLP 3072).
const CASES: { name: string; op: string; shapes: number[][] }[] = [
  { name: 'tiny hidden norm [512, 64]', op: 'rmsnorm', shapes: [[512, 64], [64]] },
  { name: 'tiny q norm [1, 512, 4, 32]', op: 'rmsnorm', shapes: [[1, 512, 4, 32], [32]] },
  { name: 'rm hidden norm [8, 256, 64]', op: 'rmsnorm', shapes: [[8, 256, 64], [64]] },
  { name: '0.6B hidden norm [512, 1024]', op: 'rmsnorm', shapes: [[512, 1024], [1024]] },
  { name: '0.6B q norm [1, 512, 16, 128]', op: 'rmsnorm', shapes: [[1, 512, 16, 128], [128]] },
  { name: 'tiny swiglu [512, 192]', op: 'swiglu', shapes: [[512, 192], [512, 192]] },
  { name: 'rm swiglu [8, 256, 192]', op: 'swiglu', shapes: [[8, 256, 192], [8, 256, 192]] },
  { name: '0.6B swiglu [512, 3072]', op: 'swiglu', shapes: [[512, 3072], [512, 3072]] },
  { name: 'tiny rope [1, 4, 512, 32]', op: 'rope', shapes: [[1, 4, 512, 32], [1, 1, 512, 32], [1, 1, 512, 32]] },
  { name: 'rm rope [8, 4, 256, 32]', op: 'rope', shapes: [[8, 4, 256, 32], [8, 1, 256, 32], [8, 1, 256, 32]] },
  { name: '0.6B rope [1, 16, 512, 128]', op: 'rope', shapes: [[1, 16, 512, 128], [1, 1, 512, 128], [1, 1, 512, 128]] },
];

/** Milliseconds of one forward + backward (tf.grads of sum(f * dy)), best of `reps` rounds. */
function timeOp(f: Op, inputs: tf.Tensor[], dy: tf.Tensor, k: number): (rounds: number) => number {
  const grads = tf.grads((...xs: tf.Tensor[]) => f([...xs, ...inputs.slice(k)]).mul(dy).sum());
  const once = () => tf.dispose(grads(inputs.slice(0, k)));
  once();
  return () => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) once();
    return (performance.now() - t0) / n;
  };
}

/** Bytes alive after the forward pass, before the backward. */
function heldBytes(f: Op, inputs: tf.Tensor[], k: number): number {
  let kept = 0;
  tf.tidy(() => {
    const vars = inputs.slice(0, k).map((t) => tf.variable(t));
    const before = tf.memory().numBytes;
    const { value, grads } = tf.variableGrads(() => {
      const y = f([...vars, ...inputs.slice(k)]).sum() as tf.Scalar;
      kept = tf.memory().numBytes - before;
      return y;
    }, vars);
    tf.dispose([value, ...Object.values(grads), ...vars]);
  });
  return kept;
}

const rows: { case: string; autodiff_ms: number; ours_ms: number; speedup: number; autodiff_held_mb: number; ours_held_mb: number }[] = [];
for (const c of CASES) {
  const inputs = c.shapes.map((s, i) => tf.randomNormal(s, 0, 1, 'float32', i + 1));
  const dy = tf.randomNormal(c.shapes[0], 0, 1, 'float32', 9);
  const k = GRAD_INPUTS[c.op];
  const sides = [timeOp(AUTODIFF[c.op], inputs, dy, k), timeOp(OURS[c.op], inputs, dy, k)];
  const best = [Infinity, Infinity];
  for (let r = 0; r < reps; r++) sides.forEach((run, i) => (best[i] = Math.min(best[i], run(1))));
  const mb = (f: Op) => heldBytes(f, inputs, k) / 2 ** 20;
  rows.push({
    case: c.name, autodiff_ms: +best[0].toFixed(3), ours_ms: +best[1].toFixed(3), speedup: +(best[0] / best[1]).toFixed(2),
    autodiff_held_mb: +mb(AUTODIFF[c.op]).toFixed(2), ours_held_mb: +mb(OURS[c.op]).toFixed(2),
  });
  tf.dispose([...inputs, dy]);
}

const lines = ['| op (forward + backward) | tfjs autodiff ms | ours ms | speedup | held MB (autodiff) | held MB (ours) |', '|---|---|---|---|---|---|'];
for (const r of rows) lines.push(`| ${r.case} | ${r.autodiff_ms} | ${r.ours_ms} | ${r.speedup} | ${r.autodiff_held_mb} | ${r.ours_held_mb} |`);
process.stderr.write(`${info.device}\n${lines.join('\n')}\n`);
console.log(JSON.stringify({ device: info.device, reps, n, rows }));
