// The Qwen3 tokenizer and chat template. Expected ids come from test/reference/tokenizer_reference.py
// (an independent Python byte-level BPE over tokenizer.json) and from direct vocab look-ups;
// expected renderings are written out by hand from Qwen3's documented turn format.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultTokenizerDir, loadTokenizer, QWEN3_TOKENS, TokenizerError } from '../../src/data/tokenizer.js';
import { randomInts } from '../helpers/backends.js';

const tok = loadTokenizer();
const tokenizerJson = JSON.parse(fs.readFileSync(path.join(defaultTokenizerDir(), 'tokenizer.json'), 'utf8')) as {
  model: { vocab: Record<string, number> };
};
const vocab = tokenizerJson.model.vocab;
const { cases } = JSON.parse(fs.readFileSync(new URL('../fixtures/tokenizer_ids.json', import.meta.url), 'utf8')) as {
  cases: { text: string; ids: number[] }[];
};

test('ids equal the independent Python BPE on every fixture string (medical, unicode, whitespace, special tokens)', () => {
  assert.ok(cases.length >= 25);
  for (const c of cases) assert.equal(tok.encode(c.text), c.ids, JSON.stringify(c.text));
});

test('single pieces equal their vocab entries (byte-level: a leading space is \u0120)', () => {
  assert.equal(tok.encode('Hello'), [vocab['Hello']]);
  assert.equal(tok.encode(' world'), [vocab['\u0120world']]);
  assert.equal(tok.encode('\n'), [vocab['\u010a']]);
  // Qwen splits numbers into single digits.
  assert.equal(tok.encode('2024'), ['2', '0', '2', '4'].map((d) => vocab[d]));
});

test('decode inverts encode on medical and unicode text (NFC-normalised)', () => {
  const texts = [
    'Take 500 mg of amoxicillin three times daily for 7 days.',
    'SpO₂ 88% — call 911 if chest pain radiates to the left arm.',
    '高血压患者应定期监测血压。',
    'Ἀσκληπιός · naïve café · 💊🩺 · e\u0301',
    '  two leading spaces\tand a tab\n\nthen a blank line ',
  ];
  for (const t of [...texts, ...cases.map((c) => c.text)]) assert.is(tok.decode(tok.encode(t)), t.normalize('NFC'));
});

test('special tokens: ids, stop ids, skipping on decode', () => {
  assert.is(tok.tokenToId('<|endoftext|>'), QWEN3_TOKENS.endOfText);
  assert.is(tok.tokenToId('<|im_start|>'), QWEN3_TOKENS.imStart);
  assert.is(tok.tokenToId('<|im_end|>'), QWEN3_TOKENS.imEnd);
  assert.is(tok.tokenToId('<think>'), QWEN3_TOKENS.thinkStart);
  assert.is(tok.tokenToId('</think>'), QWEN3_TOKENS.thinkEnd);
  assert.equal(new Set(tok.stopTokenIds), new Set([151645, 151643]));
  assert.is(tok.eosTokenId, 151645);
  assert.is(tok.padTokenId, 151643);
  assert.is(tok.vocabSize, 151669);
  const ids = tok.encode('<|im_start|>assistant\nRest and fluids.<|im_end|>');
  assert.is(ids[0], 151644);
  assert.is(ids.at(-1), 151645);
  assert.is(tok.decode(ids, { skipSpecialTokens: true }), 'assistant\nRest and fluids.');
  assert.throws(() => tok.decode([200000]), (e: unknown) => e instanceof TokenizerError && /id 200000/.test((e as Error).message));
});

test('chat template: system + user with a generation prompt, thinking on (default) and off', () => {
  const messages = [
    { role: 'system', content: 'You are a careful clinician.' },
    { role: 'user', content: 'What is a normal resting heart rate?' },
  ];
  const head = '<|im_start|>system\nYou are a careful clinician.<|im_end|>\n<|im_start|>user\nWhat is a normal resting heart rate?<|im_end|>\n';
  assert.is(tok.applyChatTemplate(messages), head);
  assert.is(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), head + '<|im_start|>assistant\n');
  assert.is(tok.applyChatTemplate(messages, { addGenerationPrompt: true, enableThinking: true }), head + '<|im_start|>assistant\n');
  assert.is(
    tok.applyChatTemplate(messages, { addGenerationPrompt: true, enableThinking: false }),
    head + '<|im_start|>assistant\n<think>\n\n</think>\n\n',
  );
  const chatCase = cases.find((c) => c.text === head + '<|im_start|>assistant\n');
  assert.ok(chatCase, 'the fixture holds this rendering');
  assert.equal(tok.encodeChat(messages, { addGenerationPrompt: true }), chatCase!.ids);
});

test('chat template: earlier assistant turns lose their reasoning, the last one keeps it', () => {
  const rendered = tok.applyChatTemplate([
    { role: 'user', content: 'Is 38.5 °C a fever?' },
    { role: 'assistant', content: '<think>\nAdult threshold is 38.0.\n</think>\n\nYes, it is a fever.' },
    { role: 'user', content: 'Should I see a doctor?' },
    { role: 'assistant', content: 'If it lasts over 3 days, yes.', reasoning_content: 'Duration matters.' },
  ]);
  assert.is(
    rendered,
    '<|im_start|>user\nIs 38.5 °C a fever?<|im_end|>\n' +
      '<|im_start|>assistant\nYes, it is a fever.<|im_end|>\n' +
      '<|im_start|>user\nShould I see a doctor?<|im_end|>\n' +
      '<|im_start|>assistant\n<think>\nDuration matters.\n</think>\n\nIf it lasts over 3 days, yes.<|im_end|>\n',
  );
});

test('a message of a role the template does not render, or with non-string content, is a TokenizerError naming it', () => {
  const isError = (re: RegExp) => (e: unknown) => e instanceof TokenizerError && re.test((e as Error).message);
  const bot = [{ role: 'user', content: 'Hi' }, { role: 'bot', content: 'Hello, how can I help?' }];
  assert.throws(() => tok.encodeChat(bot), isError(/^chat messages\[1\]\.role: "bot" is not a role the chat template renders; use one of system, user, assistant, tool$/));
  assert.throws(() => tok.applyChatTemplate(bot), isError(/messages\[1\]\.role: "bot"/));
  assert.throws(() => tok.encodeChat([{ content: 'Hi' } as any]), isError(/messages\[0\]\.role: undefined is not a role/));
  assert.throws(() => tok.encodeChat([{ role: 'user', content: 42 } as any]), isError(/^chat messages\[0\]\.content \(role user\): expected a string, got number$/));
  assert.throws(() => tok.encodeChat([{ role: 'system', content: 'x' }, { role: 'user', content: null } as any]), isError(/messages\[1\]\.content \(role user\): expected a string, got null/));
  assert.throws(() => tok.encodeChat([{ role: 'user', content: [{ type: 'text', text: 'Hi' }] } as any]), isError(/messages\[0\]\.content \(role user\): expected a string, got an array/));
  assert.throws(() => tok.encodeChat([]), isError(/expected a non-empty array/));
  // Every allowed role renders: a tool result becomes a <tool_response> in a user turn.
  assert.is(
    tok.applyChatTemplate([{ role: 'system', content: 'S.' }, { role: 'user', content: 'Temp?' }, { role: 'assistant', content: 'Checking.' }, { role: 'tool', content: '{"t": 37.5}' }]),
    '<|im_start|>system\nS.<|im_end|>\n<|im_start|>user\nTemp?<|im_end|>\n<|im_start|>assistant\nChecking.<|im_end|>\n<|im_start|>user\n<tool_response>\n{"t": 37.5}\n</tool_response><|im_end|>\n',
  );
});

test('encodeHead gives exactly the first ids of full tokenization on long mixed text, and says what it cut', () => {
  // Pieces chosen to sit on every side of the cut rules: spaces, digits, punctuation, newlines,
  // contractions, combining marks, CJK, Hangul jamo, emoji, added tokens and parts of them.
  const pieces = ['word', 'Word', ' ', '  ', '\n', '\n\n', '\t', '\r\n', '.', ',', '...', "'s", "'re", '"', '(', ')', '-', '\u2014', '123', '4', '38.5', '\u00b0C', '\u00e9', 'e\u0301', '\u1ec7', '\u0301', '\u4e2d\u6587', '\uff0c', '\u3002', '\ud55c\uad6d\uc5b4', '\u1100\u1161', '\u{1f600}', '\u{1d400}\u{1d401}', '<|im_end|>', '<think>', '</think>', '<|im', '_end', '\u00b5g', '\u00bd', '\u00b2', '\ufb01', '\u00a0', '==', '    ', 'https://x.org/a?b=c', 'ibuprofen', 'mg/kg'];
  let cut = 0;
  for (let t = 0; t < 60; t++) {
    const text = Array.from(randomInts(700, `head-${t}`, 0, pieces.length), (i) => pieces[i]).join('');
    const full = tok.encode(text);
    for (const k of [0, 1, 7, 50, 120, 200]) {
      const head = tok.encodeHead(text, k);
      assert.equal(head.ids, full.slice(0, k), `text ${t}, ${k} tokens`);
      assert.is(head.ids.length + head.idsCut + (head.charsCut > 0 ? tok.encode(text.slice(text.length - head.charsCut)).length : 0), full.length, `text ${t}, ${k} tokens: the cut parts hold the rest`);
      if (head.charsCut > 0) cut++;
    }
  }
  assert.ok(cut > 200, `the texts were cut before tokenizing (${cut} times)`);
  // A short text is tokenized whole.
  assert.equal(tok.encodeHead('Call 911 now.', 2), { ids: tok.encode('Call 911 now.').slice(0, 2), idsCut: tok.encode('Call 911 now.').length - 2, charsCut: 0 });
  assert.throws(() => tok.encodeHead('x', -1), (e: unknown) => e instanceof TokenizerError && /encodeHead needs a whole number of tokens >= 0, got -1/.test((e as Error).message));
});

test('fitsIn is false only when the text certainly has more ids than allowed', () => {
  // Texts with the most characters per token (128-space tokens) still fit in their own count.
  for (const text of ['Hello world', ' '.repeat(50_000), '='.repeat(20_000), 'a'.repeat(3000), '\u4e2d'.repeat(2000), 'e\u0301'.repeat(1500)]) {
    const n = tok.encode(text).length;
    assert.ok(tok.fitsIn(text, n), `${n} ids fit in ${n}`);
  }
  assert.not.ok(tok.fitsIn('word '.repeat(100_000), 1024));
  assert.ok(tok.fitsIn('word '.repeat(100), 1024));
});

test('a tokenizer folder loads the same way, with stop ids from generation_config.json; a folder without files is a clear error', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-tok-'));
  try {
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(defaultTokenizerDir(), f), path.join(dir, f));
    fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [151645, 151643, 151644] }));
    const t = loadTokenizer(dir);
    assert.equal(t.encode('Hello world'), tok.encode('Hello world'));
    assert.equal(new Set(t.stopTokenIds), new Set([151645, 151643, 151644]));
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-tok-'));
    assert.throws(() => loadTokenizer(empty), /tokenizer\.json: not found/);
    fs.rmSync(empty, { recursive: true });
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test.run();
