// promedical export-gguf in child processes, as a user runs it: a model folder and a PEFT adapter
// folder become GGUF files (one JSON line on stdout), and bad input fails with one line naming the
// argument or flag, before anything is written, leaving an existing OUT.gguf as it was.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readGguf } from '../../src/model/gguf.js';
import { addLora, saveLora } from '../../src/model/lora.js';
import { loadQwen3 } from '../../src/model/pretrained.js';
import { ensureTinyQwen3 } from '../../src/model/tiny.js';
import { useBackend } from '../helpers/backends.js';
import { cli, errorLine, snapshot } from '../helpers/cli.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-cli-gguf-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let tiny: string;
test.before(async () => {
  await useBackend('wasm');
  tiny = await ensureTinyQwen3(undefined, { log: () => {} });
});
const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!);

test('a model folder: OUT.gguf relative to where the user stands, the dtype asked for, one JSON line', () => {
  const r = cli(['export-gguf', tiny, 'out/tiny.gguf', '--dtype', 'F16'], { cwd: tmp });
  assert.is(r.code, 0, r.stderr);
  const s = lastJson(r.stdout);
  const file = path.join(tmp, 'out/tiny.gguf');
  assert.equal(s, { file, kind: 'model', dtype: 'F16', bytes: fs.statSync(file).size, tensors: 24, model: tiny, adapter: null, tokenizer: path.join(tiny, 'tokenizer.json') });
  const g = readGguf(file);
  assert.is(g.get('general.architecture'), 'qwen3');
  assert.is(g.get('general.file_type'), 1);
  assert.is(g.tensor('blk.0.attn_q.weight').type, 'F16');
  assert.is(g.tensor('blk.0.attn_norm.weight').type, 'F32');
  assert.is((g.get('tokenizer.ggml.tokens') as string[]).length, 151936);
  g.close();
});

test('a PEFT adapter folder: a llama.cpp LoRA GGUF, its base found in adapter_config.json; without a base, --base is asked for', async () => {
  const model = await loadQwen3(tiny);
  addLora(model, { r: 2, alpha: 4, targetModules: ['q_proj', 'up_proj'], seed: 1 });
  for (const a of model.adapters.values()) a.B.assign(tf.randomNormal(a.B.shape, 0, 0.1, 'float32', 7));
  await saveLora(model, path.join(tmp, 'adapter'), { baseModelNameOrPath: tiny });
  await saveLora(model, path.join(tmp, 'orphan'));
  const B = Array.from(model.adapters.get('model.layers.1.mlp.up_proj')!.B.dataSync());
  model.dispose();

  const r = cli(['export-gguf', 'adapter', 'adapter.gguf', '--lora'], { cwd: tmp });
  assert.is(r.code, 0, r.stderr);
  const s = lastJson(r.stdout);
  assert.equal([s.kind, s.dtype, s.tensors, s.model, s.adapter], ['lora', 'F32', 2 * 2 * 2, tiny, path.join(tmp, 'adapter')]);
  const g = readGguf(path.join(tmp, 'adapter.gguf'));
  assert.equal([g.get('general.type'), g.get('adapter.type'), g.get('adapter.lora.alpha')], ['adapter', 'lora', 4]);
  assert.equal(g.tensor('blk.1.ffn_up.weight.lora_b').dims, [2, 192]);
  assert.equal(Array.from(g.floats('blk.1.ffn_up.weight.lora_b')), B);
  g.close();

  const orphan = cli(['export-gguf', 'orphan', 'orphan.gguf'], { cwd: tmp });
  assert.is(orphan.code, 2, orphan.stderr);
  assert.is(errorLine(orphan), `promedical export-gguf: error: MODEL_DIR ${path.join(tmp, 'orphan')}: its LoRA adapter records no local base model; pass --base with the base Qwen3 folder`);
  assert.not.ok(fs.existsSync(path.join(tmp, 'orphan.gguf')));
});

test('bad input: one line naming the argument or flag, exit 2, and an existing OUT.gguf untouched', () => {
  const dir = path.join(tmp, 'keep');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'old.gguf'), 'a previous export');
  fs.mkdirSync(path.join(dir, 'not-a-model'));
  const before = snapshot(dir);
  const cases: [string[], string][] = [
    [['export-gguf', 'missing', 'keep/old.gguf'], `MODEL_DIR ${path.join(tmp, 'missing')}: no such file or folder`],
    [['export-gguf', tiny], 'expected two arguments, MODEL_DIR and OUT.gguf; got 1: ' + JSON.stringify(tiny)],
    [['export-gguf', tiny, 'keep/old.gguf', '--dtype', 'Q4_0'], '--dtype Q4_0: not an allowed value; expected one of F32, F16, BF16, Q8_0'],
    // The adapter folder of the first test: LoRA files are never Q8_0 (lora_b's rows are r long).
    [['export-gguf', 'orphan', 'keep/old.gguf', '--dtype', 'Q8_0'], '--dtype Q8_0 applies to a model export; write LoRA adapters as F32, F16 or BF16'],
    [['export-gguf', tiny, 'keep/old.gguf', '--lora'], `MODEL_DIR ${tiny}: no LoRA adapter there (no adapter_config.json in it or in its adapter/ folder)`],
    [['export-gguf', 'keep/not-a-model', 'keep/old.gguf'], `MODEL_DIR ${path.join(dir, 'not-a-model')}: no Qwen3 model there (no config.json)`],
    [['export-gguf', tiny, 'keep'], `OUT.gguf ${dir}: is a folder; give the path of the .gguf file to write`],
  ];
  for (const [args, message] of cases) {
    const r = cli(args, { cwd: tmp });
    assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.is(errorLine(r), `promedical export-gguf: error: ${message}`);
  }
  assert.equal(snapshot(dir), before, 'nothing written');
});

test('--help names the positional arguments and every flag', () => {
  const r = cli(['export-gguf', '--help'], { cwd: tmp });
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Usage: promedical export-gguf MODEL_DIR OUT\.gguf \[flags\]/);
  for (const flag of ['--dtype F32|F16|BF16|Q8_0', '--lora', '--base PATH', '--tokenizer PATH', '--backend']) assert.ok(r.stdout.includes(flag), flag);
});

test.run();
