// SFT: only response tokens (and the end token) are targets; a short run lowers the loss on its
// data and keeps the prompt tokens out of the loss.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadRecords } from '../../src/data/records.js';
import { loadTokenizer } from '../../src/data/tokenizer.js';
import { loadQwen3 } from '../../src/model/pretrained.js';
import { ensureTinyQwen3 } from '../../src/model/tiny.js';
import * as tf from '@tensorflow/tfjs';
import { padBatch } from '../../src/data/batch.js';
import { sftExample, targetPositions, targetTokenLoss, trainSft } from '../../src/train/sft.js';
import { useBackend } from '../helpers/backends.js';
import { nextTokenLoss } from '../helpers/lm.js';

const tok = loadTokenizer();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-sft-'));
test.before(() => useBackend('wasm'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('targets are exactly the response and its end token; the prompt ends with the generation prompt', () => {
  const prompt = [{ role: 'user', content: 'Is 38.5 C a fever?' }];
  const e = sftExample(tok, prompt, 'Yes, for an adult it is a fever.', 128);
  const first = e.targets.indexOf(1);
  assert.is(tok.decode(e.ids.slice(0, first)), '<|im_start|>user\nIs 38.5 C a fever?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
  assert.is(tok.decode(e.ids.slice(first)), 'Yes, for an adult it is a fever.<|im_end|>');
  assert.ok(e.targets.slice(first).every((t) => t === 1));
  const cut = sftExample(tok, prompt, 'word '.repeat(200), 40);
  assert.is(cut.ids.length, 40);
  assert.is(cut.ids.at(-1), 151645, 'the end token survives truncation');
  assert.throws(() => sftExample(tok, prompt, 'x', 10), /cannot fit in 10 tokens/);
});

test('the target-only LM head gives the full-logits masked loss and the same gradients', async () => {
  const dir = await ensureTinyQwen3(undefined, { log: () => {} });
  const model = await loadQwen3(dir);
  const ex = [sftExample(tok, [{ role: 'user', content: 'Is aspirin safe daily?' }], 'Ask your doctor first.', 64), sftExample(tok, [{ role: 'user', content: 'Hi' }], 'Hello there, how can I help?', 64)];
  const batch = padBatch(ex.map((e) => e.ids), tok.padTokenId);
  const T = batch.inputIds.shape[1];
  const pad = (xs: number[], fill: number) => [...Array(T - xs.length).fill(fill), ...xs];
  const at = targetPositions(ex.map((e) => pad(e.ids, tok.padTokenId)), ex.map((e) => pad(e.targets, 0)));
  const mask = tf.tensor2d(ex.map((e) => pad(e.targets, 0)), [2, T], 'int32');
  const vars = model.trainableVariables();
  const ours = tf.variableGrads(() => targetTokenLoss(model, batch, at), vars);
  const full = tf.variableGrads(() => nextTokenLoss(model.forward(batch.inputIds, { attentionMask: batch.attentionMask }), batch.inputIds, mask), vars);
  assert.ok(Math.abs(ours.value.dataSync()[0] - full.value.dataSync()[0]) < 1e-5, `${ours.value.dataSync()[0]} vs ${full.value.dataSync()[0]}`);
  for (const v of vars) {
    const a = ours.grads[v.name];
    const b = full.grads[v.name];
    const rel = tf.tidy(() => a.sub(b).norm().div(b.norm().add(1e-12)).dataSync()[0]);
    assert.ok(rel < 1e-4, `${v.name}: relative gradient difference ${rel}`);
  }
  model.dispose();
});

test('a few SFT steps on two records lower the loss', async () => {
  const dir = await ensureTinyQwen3(undefined, { log: () => {} });
  const model = await loadQwen3(dir);
  const records = (await loadRecords(new URL('../../data/train.jsonl', import.meta.url).pathname)).slice(0, 2);
  const run = await trainSft({ model, tokenizer: loadTokenizer(dir), records, quiet: true, config: { out: path.join(tmp, 'sft'), responses: 'best', steps: 6, lr: 5e-3, batch_size: 2, micro_batch_size: 1, max_length: 160, seed: 0, warmup_ratio: 0.1 } });
  const losses = run.metrics.rows().map((r) => r.loss as number);
  assert.is(losses.length, 6);
  assert.ok(losses[5] < losses[0] - 0.5, `loss ${losses[0]} -> ${losses[5]}`);
  run.dispose();
  model.dispose();
});

test('a 50 MB response or prompt costs a bounded prefix: ids as from a shorter prefix, or a clear error', () => {
  const spied = loadTokenizer();
  let longest = 0;
  const encode = spied.encode.bind(spied);
  spied.encode = (text: string) => ((longest = Math.max(longest, text.length)), encode(text));
  const sentence = 'The patient reports chest pain, fever 39.2 C and 2 days of cough; call 911 now.\n';
  const huge = sentence.repeat(Math.ceil(50_000_000 / sentence.length));
  const prompt = [{ role: 'user', content: 'What should I do?' }];
  const e = sftExample(spied, prompt, huge, 256);
  assert.ok(longest < 1_000_000, `tokenized a text of ${longest} characters`);
  // Expected, independently: the prompt's ids, then a 100 kB prefix tokenized in full and cut.
  const promptIds = tok.encodeChat(prompt, { addGenerationPrompt: true, enableThinking: false });
  const expected = [...promptIds, ...tok.encode(huge.slice(0, 100_000)).slice(0, 256 - promptIds.length - 1), 151645];
  assert.equal(e.ids, expected);
  assert.equal(e.targets, expected.map((_, i) => (i >= promptIds.length ? 1 : 0)));
  longest = 0;
  assert.throws(() => sftExample(spied, [{ role: 'user', content: huge }], 'ok', 256), /^SFT example cannot fit in 256 tokens: the prompt alone takes more than that/);
  assert.ok(longest < 1_000_000, `tokenized a text of ${longest} characters`);
});

test.run();
