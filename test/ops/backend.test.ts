// initBackend: the auto order, explicit choices, the PROMEDICAL_BACKEND override, and wasm threads.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/ops/backend.js';

const require = createRequire(import.meta.url);
function installed(pkg: string): boolean {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

async function quietly(prefer: Parameters<typeof initBackend>[0]) {
  const lines: string[] = [];
  const info = await initBackend(prefer, { log: (l) => lines.push(l) });
  return { info, lines };
}

test.after.each(() => {
  delete process.env.PROMEDICAL_BACKEND;
});

test("auto picks wasm where no libtensorflow binding is installed, and says why it skipped tfjs-node-gpu", async () => {
  if (installed('@tensorflow/tfjs-node-gpu') || installed('@tensorflow/tfjs-node')) {
    console.log('  (skipped: a libtensorflow binding is installed on this machine)');
    return;
  }
  const { info, lines } = await quietly('auto');
  assert.is(info.name, 'wasm');
  assert.is(tf.getBackend(), 'wasm');
  assert.match(info.device, /wasm/);
  assert.ok(lines.some((l) => /skipped tfjs-node-gpu: .*not installed/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /skipped tfjs-node: /.test(l)), lines.join('\n'));
  assert.is(lines.at(-1), `backend: wasm on ${info.device}`);
});

test('explicit cpu and wasm are honoured', async () => {
  assert.is((await quietly('cpu')).info.name, 'cpu');
  assert.is(tf.getBackend(), 'cpu');
  assert.is((await quietly('wasm')).info.name, 'wasm');
  assert.is(tf.getBackend(), 'wasm');
});

test('explicit tensorflow fails loudly when no binding is installed instead of falling back', async () => {
  if (installed('@tensorflow/tfjs-node-gpu') || installed('@tensorflow/tfjs-node')) return;
  try {
    await quietly('tensorflow');
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.match((err as Error).message, /no usable backend for 'tensorflow'/);
    assert.match((err as Error).message, /tfjs-node-gpu is not installed/);
  }
});

test('PROMEDICAL_BACKEND overrides the argument, and a bad value is an error', async () => {
  process.env.PROMEDICAL_BACKEND = 'cpu';
  const { info, lines } = await quietly('wasm');
  assert.is(info.name, 'cpu');
  assert.ok(lines.some((l) => l.includes('PROMEDICAL_BACKEND=cpu overrides')));
  process.env.PROMEDICAL_BACKEND = 'cuda';
  try {
    await quietly('auto');
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.match((err as Error).message, /PROMEDICAL_BACKEND=cuda is not one of auto, tensorflow, wasm, cpu/);
  }
});


test('wasm on 2 threads (own process): reports them, matches the cpu backend, and the process exits', () => {
  // In a child: the wasm module is set up once per process, so this process's choice is fixed.
  const script = `
    import * as tf from '@tensorflow/tfjs';
    import { initBackend } from '${new URL('../../src/ops/backend.ts', import.meta.url).pathname}';
    const info = await initBackend('wasm', { wasmThreads: 2, log: () => {} });
    const a = tf.randomUniform([300, 200], -1, 1, 'float32', 1), b = tf.randomUniform([200, 500], -1, 1, 'float32', 2);
    const wasm = tf.matMul(a, b).dataSync();
    const av = a.dataSync(), bv = b.dataSync();
    await tf.setBackend('cpu');
    const cpu = tf.matMul(tf.tensor2d(av, [300, 200]), tf.tensor2d(bv, [200, 500])).dataSync();
    let diff = 0;
    for (let i = 0; i < cpu.length; i++) diff = Math.max(diff, Math.abs(cpu[i] - wasm[i]));
    console.log(JSON.stringify({ device: info.device, diff }));`;
  // Under node_modules/.cache so that '@tensorflow/tfjs' resolves to this repository's copy.
  const root = new URL('../..', import.meta.url).pathname;
  fs.mkdirSync(path.join(root, 'node_modules', '.cache'), { recursive: true });
  const dir = fs.mkdtempSync(path.join(root, 'node_modules', '.cache', 'promedical-threads-'));
  const file = path.join(dir, 'threads.mts');
  fs.writeFileSync(file, script);
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, PROMEDICAL_BACKEND: '', PROMEDICAL_WASM_THREADS: '' } });
  fs.rmSync(dir, { recursive: true, force: true });
  assert.is(r.status, 0, `exit ${r.status} (signal ${r.signal}): ${r.stderr.slice(-500)}`);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.match(out.device, /wasm, SIMD, 2 threads/);
  assert.ok(out.diff < 1e-4, `max |wasm - cpu| ${out.diff}`);
});

test("initBackend('gpu') is an error naming the backends, not a silent fall back to cpu", async () => {
  try {
    await initBackend('gpu' as 'auto', { log: () => {} });
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /unknown backend "gpu"; expected one of auto, tensorflow, wasm, cpu/);
  }
});

test('without initBackend, loaders initialise auto on first use and a safetensors tensor read works (own process)', () => {
  const root = new URL('../..', import.meta.url).pathname;
  fs.mkdirSync(path.join(root, 'node_modules', '.cache'), { recursive: true });
  const dir = fs.mkdtempSync(path.join(root, 'node_modules', '.cache', 'promedical-lazy-'));
  const file = path.join(dir, 'lazy.mts');
  const src = new URL('../../src/index.ts', import.meta.url).pathname;
  fs.writeFileSync(file, `
    import * as tf from '@tensorflow/tfjs';
    import { ensureTinyQwen3, loadQwen3, readSafetensors } from '${src}';
    const st = readSafetensors('${path.join(root, 'test/fixtures/safetensors_numpy.safetensors')}');
    const first = st.tensor(st.names[0]);
    const early = tf.getBackend();
    const model = await loadQwen3(await ensureTinyQwen3());
    console.log(JSON.stringify({ early, backend: tf.getBackend(), layers: model.config.numHiddenLayers, values: first.size }));`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, PROMEDICAL_BACKEND: '' } });
  fs.rmSync(dir, { recursive: true, force: true });
  assert.is(r.status, 0, r.stderr.slice(-800));
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.is(out.early, 'cpu', 'a synchronous read starts on cpu');
  assert.is(out.backend, 'wasm', 'the first async loader picks auto');
  assert.ok(out.layers > 0 && out.values > 0);
  assert.match(r.stderr, /no backend set up yet: tensors start on the cpu backend/);
  assert.match(r.stderr, /backend: wasm on cpu/);
});

test('a bad thread count is refused, naming the setting', async () => {
  process.env.PROMEDICAL_WASM_THREADS = 'many';
  let message = '';
  try {
    await initBackend('wasm', { log: () => {} });
  } catch (err) {
    message = (err as Error).message;
  }
  delete process.env.PROMEDICAL_WASM_THREADS;
  assert.match(message, /PROMEDICAL_WASM_THREADS=many: expected 'auto' or a whole number from 1 to 8/);
});

test.run();
