// loadPretrained: a Qwen3 folder with the tokenizer it carries, else the bundled Qwen3 tokenizer;
// and a folder written by saveQwen3 with a tokenizer loads back with that tokenizer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultTokenizerDir, TokenizerError } from '../../src/data/tokenizer.js';
import { saveQwen3 } from '../../src/model/pretrained.js';
import { loadPretrained } from '../../src/train/pretrained.js';
import { useBackend } from '../helpers/backends.js';

const fixture = new URL('../fixtures/qwen3/tied-gqa2-f32', import.meta.url).pathname;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-pretrained-'));
test.before(() => useBackend('cpu'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A copy of the fixture checkpoint with a tokenizer of its own: Qwen3's vocabulary, but a
 * tokenizer_config.json that ends text with <|endoftext|> and has no chat template. */
function folderWithTokenizer(name: string): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(fixture, f), path.join(dir, f));
  fs.copyFileSync(path.join(defaultTokenizerDir(), 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  const cfg = JSON.parse(fs.readFileSync(path.join(defaultTokenizerDir(), 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  delete cfg.chat_template;
  delete cfg.pad_token;
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ ...cfg, eos_token: '<|endoftext|>' }));
  return dir;
}

test('loadPretrained: a folder without tokenizer files gets the bundled Qwen3 tokenizer', async () => {
  const { model, tokenizer } = await loadPretrained(fixture);
  assert.is(model.config.vocabSize, 96); // the fixture's config.json
  assert.is(tokenizer.source, path.join(defaultTokenizerDir(), 'tokenizer.json'));
  assert.is(tokenizer.eosTokenId, 151645); // the bundled tokenizer_config.json: eos <|im_end|>
  assert.ok(tokenizer.chatTemplate !== null);
  model.dispose();
});

test('loadPretrained: a folder with tokenizer.json + tokenizer_config.json uses its own', async () => {
  const dir = folderWithTokenizer('own');
  const { model, tokenizer } = await loadPretrained(dir);
  assert.is(tokenizer.source, path.join(dir, 'tokenizer.json'));
  assert.is(tokenizer.eosTokenId, 151643); // <|endoftext|>, as this folder's config says
  assert.is(tokenizer.padTokenId, 151643); // no pad_token: pad is eos
  assert.is(tokenizer.chatTemplate, null);
  model.dispose();
  // tokenizerDir overrides the folder's own files.
  const other = await loadPretrained(dir, { tokenizerDir: defaultTokenizerDir() });
  assert.is(other.tokenizer.eosTokenId, 151645);
  other.model.dispose();
});

test('loadPretrained: tokenizer.json without tokenizer_config.json is an error naming the file', async () => {
  const dir = folderWithTokenizer('half');
  fs.rmSync(path.join(dir, 'tokenizer_config.json'));
  try {
    await loadPretrained(dir);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, TokenizerError);
    assert.match((err as Error).message, path.join(dir, 'tokenizer_config.json'));
  }
});

test('saveQwen3 with a tokenizer: the saved folder loads back with that tokenizer', async () => {
  const src = folderWithTokenizer('src');
  const { model, tokenizer } = await loadPretrained(src);
  const out = path.join(tmp, 'saved');
  await saveQwen3(model, out, { dtype: 'float32', tokenizer });
  model.dispose();
  const again = await loadPretrained(out);
  assert.is(again.tokenizer.source, path.join(out, 'tokenizer.json'));
  assert.is(again.tokenizer.eosTokenId, 151643);
  assert.is(again.tokenizer.chatTemplate, null);
  assert.equal(again.tokenizer.encode('Hello world'), [9707, 1879]); // "Hello", "\u0120world" in Qwen3's vocab
  again.model.dispose();
});

test.run();
