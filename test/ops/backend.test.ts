// initBackend: the auto order, explicit choices, and the PROMEDICAL_BACKEND override.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
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

test.run();
