// ECI inputs: the rendered text written out by hand from the template, the truncation rules,
// padding, masks and last-token indices, and aligned pairwise batches.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as tf from '@tensorflow/tfjs';
import { ECI_INSTRUCTION, eciInstance, eciPairBatch, TruncationCounter } from '../../src/data/eci.js';
import { loadTokenizer } from '../../src/data/tokenizer.js';
import type { RubricRecord } from '../../src/data/schema.js';
import { useBackend } from '../helpers/backends.js';

const tok = loadTokenizer();
test.before(() => useBackend('cpu'));
const criterion = { text: 'Tells the user to call emergency services now.', tier: 'safety' as const };
const prompt = [{ role: 'user', content: 'My father has crushing chest pain.' }];

test('the criterion is injected as a system block before the conversation; the input ends at <|im_end|>', () => {
  const { ids, truncation } = eciInstance(tok, prompt, 'Call 911 now.', criterion);
  const expected =
    `<|im_start|>system\n${ECI_INSTRUCTION}\nCriterion (safety): Tells the user to call emergency services now.<|im_end|>\n` +
    '<|im_start|>user\nMy father has crushing chest pain.<|im_end|>\n' +
    '<|im_start|>assistant\n<think>\n\n</think>\n\nCall 911 now.<|im_end|>';
  assert.is(tok.decode(ids), expected);
  assert.is(ids.at(-1), 151645);
  assert.equal(truncation, { responseTokensCut: 0, responseCharsCut: 0, promptTurnsDropped: 0 });
});

test('too long: the response tail goes first, then the oldest turns; the criterion and last turn never', () => {
  const long = 'word '.repeat(400);
  const full = eciInstance(tok, prompt, long, criterion);
  const cut = eciInstance(tok, prompt, long, criterion, { maxLength: 120 });
  assert.is(cut.ids.length, 120);
  assert.ok(cut.truncation.responseTokensCut > 0);
  // The tail cut before tokenizing (responseCharsCut characters) holds the rest of the tokens.
  const rest = cut.truncation.responseCharsCut;
  assert.is(full.ids.length - cut.ids.length, cut.truncation.responseTokensCut + (rest > 0 ? tok.encode(long.slice(long.length - rest)).length : 0));
  const text = tok.decode(cut.ids);
  assert.ok(text.includes('Criterion (safety): Tells the user to call emergency services now.'));
  assert.ok(text.endsWith('word<|im_end|>') || text.endsWith('word <|im_end|>'));

  const turns = [
    { role: 'user', content: 'First question, quite long: ' + 'detail '.repeat(80) },
    { role: 'assistant', content: 'An earlier answer.' },
    { role: 'user', content: 'My father has crushing chest pain.' },
  ];
  const short = eciInstance(tok, turns, 'Call 911 now.', criterion, { maxLength: 90 });
  assert.is(short.truncation.promptTurnsDropped, 2);
  assert.ok(tok.decode(short.ids).includes('My father has crushing chest pain.'));
  assert.not.ok(tok.decode(short.ids).includes('First question'));
  assert.throws(() => eciInstance(tok, prompt, 'x', criterion, { maxLength: 20 }), /cannot fit in 20 tokens/);
  const counter = new TruncationCounter();
  counter.add(cut.truncation);
  counter.add(short.truncation);
  counter.add(full.truncation);
  assert.match(counter.toString(), /^1 of 3 ECI inputs had their response cut \(\d+ tokens and \d+ characters not tokenized\), 1 lost earlier prompt turns$/);
});

/** A Qwen3 tokenizer that records the longest text it was asked to encode. */
function spiedTokenizer() {
  const t = loadTokenizer();
  const spy = { longest: 0 };
  const encode = t.encode.bind(t);
  t.encode = (text: string) => {
    spy.longest = Math.max(spy.longest, text.length);
    return encode(text);
  };
  return { t, spy };
}

// About 50 MB of ordinary text that does not simply repeat (built once).
let huge50: string | undefined;
function hugeText(chars: 50_000_000): string {
  return (huge50 ??= buildText(chars));
}
function buildText(chars: number): string {
  const words = ['the', 'patient', 'reports', 'chest', 'pain,', 'fever', '39.2', 'C;', 'no', 'history', 'of', 'aspirin', 'use.', 'Call', '911', 'now!', 'dyspnoea', '(mild)', 'since', 'Tuesday'];
  const parts: string[] = [];
  let n = 0;
  for (let i = 0; n < chars; i++) {
    const w = words[(i * 7 + (i >> 3) * 13) % words.length] + (i % 17 === 0 ? '\n' : ' ');
    parts.push(w);
    n += w.length;
  }
  return parts.join('');
}

test('a 50 MB response: only a bounded prefix is tokenized, and the ids are those of a shorter prefix of it', () => {
  const huge = hugeText(50_000_000);
  const { t, spy } = spiedTokenizer();
  const t0 = Date.now();
  const inst = eciInstance(t, prompt, huge, criterion);
  const seconds = (Date.now() - t0) / 1000;
  assert.ok(spy.longest < 1_000_000, `tokenized a text of ${spy.longest} characters`);
  assert.ok(seconds < 30, `took ${seconds} s`);
  // Expected, independently: the empty-response input is head + <|im_end|>; the response part is
  // the first `room` ids of a 100 kB prefix tokenized in full.
  const empty = eciInstance(tok, prompt, '', criterion);
  const room = 1024 - empty.ids.length;
  const expected = [...empty.ids.slice(0, -1), ...tok.encode(huge.slice(0, 100_000)).slice(0, room), 151645];
  assert.is(inst.ids.length, 1024);
  assert.equal(inst.ids, expected);
  const { responseTokensCut, responseCharsCut } = inst.truncation;
  assert.ok(responseCharsCut > huge.length - 1_000_000, `${responseCharsCut} characters were not tokenized`);
  assert.is(tok.encode(huge.slice(0, huge.length - responseCharsCut)).length, room + responseTokensCut, 'the tokenized prefix gave the kept and the counted cut tokens');
});

test('a 50 MB prompt turn that cannot fit is an error without tokenizing it', () => {
  const { t, spy } = spiedTokenizer();
  const turns = [{ role: 'user', content: hugeText(50_000_000) }];
  assert.throws(() => eciInstance(t, turns, 'ok', criterion, { maxLength: 512 }), /^ECI input cannot fit in 512 tokens: the criterion and the prompt's last turn alone take more than that/);
  assert.ok(spy.longest < 1_000_000, `tokenized a text of ${spy.longest} characters`);
  // An earlier huge turn is dropped the same way, and the input is built from the rest.
  const two = [{ role: 'user', content: hugeText(50_000_000) }, { role: 'assistant', content: 'Go on.' }, ...prompt];
  const shortened = eciInstance(t, two, 'Call 911 now.', criterion, { maxLength: 512 });
  assert.equal(shortened.ids, eciInstance(tok, prompt, 'Call 911 now.', criterion, { maxLength: 512 }).ids);
  assert.is(shortened.truncation.promptTurnsDropped, 2);
  assert.ok(spy.longest < 1_000_000, `tokenized a text of ${spy.longest} characters`);
});

test('pairwise batches keep chosen and rejected aligned row by row on one length', () => {
  const record: RubricRecord = {
    id: 'r', prompt, criteria: [{ id: 'c1', ...criterion }, { id: 'c2', text: 'Is calm.', tier: 'excellence' }],
    responses: [{ id: 'good', text: 'Call emergency services now; chew an aspirin only if a clinician says so.' }, { id: 'bad', text: 'Wait and see.' }],
  };
  const { chosen, rejected } = eciPairBatch(tok, [
    { record, chosen: 'good', rejected: 'bad', criterionId: 'c1' },
    { record, chosen: 'bad', rejected: 'good', criterionId: 'c2' },
  ]);
  assert.equal(chosen.inputIds.shape, rejected.inputIds.shape);
  const text = (b: typeof chosen, row: number) => tok.decode((b.inputIds.arraySync() as number[][])[row].filter((_, j) => (b.attentionMask.arraySync() as number[][])[row][j] === 1));
  assert.ok(text(chosen, 0).includes('Criterion (safety)') && text(chosen, 0).includes('Call emergency services now'));
  assert.ok(text(rejected, 0).includes('Criterion (safety)') && text(rejected, 0).includes('Wait and see.'));
  assert.ok(text(chosen, 1).includes('Criterion (excellence): Is calm.') && text(chosen, 1).includes('Wait and see.'));
  tf.dispose([chosen.inputIds, chosen.attentionMask, rejected.inputIds, rejected.attentionMask]);
});

test.run();
