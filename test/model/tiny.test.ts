// The bundled tiny checkpoint: deterministic bytes, a complete HF folder, and it works end to end
// with Qwen3's real tokenizer and chat template.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cacheDir, ensureTinyQwen3 } from '../../src/model/tiny.js';
import { loadQwen3 } from '../../src/model/pretrained.js';
import { generate } from '../../src/model/generate.js';
import { loadTokenizer } from '../../src/data/tokenizer.js';
import { useBackend } from '../helpers/backends.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-tiny-'));
test.before(() => useBackend('wasm'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

test('the tiny checkpoint is written deterministically, as a full HF folder, only when missing', async () => {
  const logs: string[] = [];
  const a = await ensureTinyQwen3(path.join(tmp, 'a'), { log: (l) => logs.push(l) });
  const b = await ensureTinyQwen3(path.join(tmp, 'b'), { log: (l) => logs.push(l) });
  assert.is(logs.length, 2);
  assert.match(logs[0], /writing the tiny Qwen3 checkpoint/);
  assert.equal(fs.readdirSync(a).sort(), ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  assert.is(sha(path.join(a, 'model.safetensors')), sha(path.join(b, 'model.safetensors')));
  await ensureTinyQwen3(a, { log: (l) => logs.push(l) });
  assert.is(logs.length, 2, 'an existing checkpoint is not rewritten');
  const size = fs.statSync(path.join(a, 'model.safetensors')).size;
  assert.ok(size > 19e6 && size < 21e6, `BF16, about 20 MB: ${size}`);
});

test('the default folder is the user cache (PROMEDICAL_CACHE, else XDG_CACHE_HOME, else ~/.cache); an unwritable one is a clear error', async () => {
  const saved = { own: process.env.PROMEDICAL_CACHE, xdg: process.env.XDG_CACHE_HOME };
  try {
    process.env.PROMEDICAL_CACHE = path.join(tmp, 'own');
    assert.is(cacheDir(), path.join(tmp, 'own'));
    delete process.env.PROMEDICAL_CACHE;
    process.env.XDG_CACHE_HOME = path.join(tmp, 'xdg');
    assert.is(cacheDir(), path.join(tmp, 'xdg', 'promedical'));
    delete process.env.XDG_CACHE_HOME;
    assert.is(cacheDir(), path.join(os.homedir(), '.cache', 'promedical'));
  } finally {
    for (const [k, v] of [['PROMEDICAL_CACHE', saved.own], ['XDG_CACHE_HOME', saved.xdg]] as const) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }
  fs.writeFileSync(path.join(tmp, 'a-file'), '');
  try {
    await ensureTinyQwen3(path.join(tmp, 'a-file', 'qwen3-tiny'), { log: () => {} });
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /cannot write the tiny Qwen3 to .*a-file\/qwen3-tiny: EEXIST \(set PROMEDICAL_CACHE to a writable folder\)/);
  }
});

test('tokenizer + chat template + tiny model: a chat prompt generates and decodes', async () => {
  const dir = await ensureTinyQwen3(path.join(tmp, 'a'), { log: () => {} });
  const model = await loadQwen3(dir);
  const tok = loadTokenizer(dir);
  assert.equal(new Set(tok.stopTokenIds), new Set([151645, 151643]));
  const prompt = tok.encodeChat([{ role: 'user', content: 'What lowers blood pressure?' }], { addGenerationPrompt: true, enableThinking: false });
  const [out] = await generate(model, [prompt], { maxNewTokens: 5, temperature: 0.7, topP: 0.8, topK: 20, seed: 1, stopTokenIds: tok.stopTokenIds });
  assert.ok(out.length >= 1 && out.length <= 5);
  assert.ok(out.every((id) => id >= 0 && id < model.config.vocabSize));
  assert.type(tok.decode(out), 'string');
  model.dispose();
});

test.run();
