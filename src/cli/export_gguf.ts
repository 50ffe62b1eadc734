// promedical export-gguf MODEL_DIR OUT.gguf: a Qwen3 folder as one GGUF file for llama.cpp, or a
// PEFT LoRA adapter as a llama.cpp LoRA adapter GGUF.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError, readQwen3Config } from '../model/config.js';
import { saveGguf, saveLoraGguf, type GgufDtype } from '../model/gguf.js';
import { loadLora } from '../model/lora.js';
import { loadQwen3 } from '../model/pretrained.js';
import { initBackend } from '../ops/backend.js';
import { fieldProblem, type Field } from '../train/config.js';
import { loadPretrained } from '../train/pretrained.js';
import { flagOf, helpText, parseFlags, UsageError, userCwd } from './args.js';
import { requireFile, requireModelDir, say } from './inputs.js';

const FIELDS: Record<string, Field> = {
  dtype: { kind: 'enum', values: ['F32', 'F16', 'BF16', 'Q8_0'], doc: 'dtype of the matrices (norms stay F32); F32 keeps the weights exactly; Q8_0 is llama.cpp\'s 8-bit blocks (not for --lora).' },
  lora: { kind: 'boolean', doc: 'Export the LoRA adapter of MODEL_DIR (an adapter folder, or one holding adapter/); an adapter folder is exported as one anyway.' },
  base: { kind: 'string', nullable: true, doc: "The adapter's base Qwen3 folder; without it, the one the reward model or adapter_config.json records." },
  tokenizer: { kind: 'string', nullable: true, doc: "Tokenizer folder; without it, MODEL_DIR's own tokenizer.json, else the bundled Qwen3 one." },
  backend: { kind: 'enum', values: ['auto', 'tensorflow', 'wasm', 'cpu'], doc: 'tfjs backend the weights are read on.' },
};
const DEFAULTS = { dtype: 'F32', lora: false, base: null, tokenizer: null, backend: 'auto' };

const ABOUT = `Writes a Hugging Face Qwen3 folder (config.json, safetensors, tokenizer) as one GGUF file that
llama.cpp and node-llama-cpp load (architecture qwen3), or a PEFT LoRA adapter (adapter_config.json
+ adapter_model.safetensors; a reward model or checkpoint folder holding adapter/) as a llama.cpp
LoRA adapter GGUF, to load beside its base model's GGUF. The file is written atomically: a failed
export leaves an existing OUT.gguf as it was. Prints one JSON line:
{ file, kind: "model" | "lora", dtype, bytes, tensors, model, adapter, tokenizer }.`;

const NOTES = ['MODEL_DIR and OUT.gguf are positional: promedical export-gguf runs/train-sft/policy policy.gguf --dtype F16'];

/** Splits the positional arguments from the flags (a flag that takes a value takes the next one). */
function positionals(argv: string[]): { args: string[]; flags: string[] } {
  const valued = new Set(['--config', ...Object.entries(FIELDS).filter(([, f]) => f.kind !== 'boolean').map(([k]) => flagOf(k))]);
  const args: string[] = [];
  const flags: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--') || a === '--') {
      if (a !== '--') args.push(a);
      continue;
    }
    flags.push(a);
    if (!a.includes('=') && valued.has(a) && i + 1 < argv.length) flags.push(argv[++i]);
  }
  return { args, flags };
}

/** The PEFT adapter folder MODEL_DIR is or holds, if any. */
function adapterDir(dir: string): string | null {
  for (const d of [dir, path.join(dir, 'adapter')]) if (fs.existsSync(path.join(d, 'adapter_config.json'))) return d;
  return null;
}

/** The base model an adapter records: a reward model's reward_config.json, else adapter_config.json. */
function recordedBase(dir: string, adapter: string): string | null {
  const hasModel = (p: string) => fs.existsSync(path.join(p, 'config.json'));
  try {
    const rm = JSON.parse(fs.readFileSync(path.join(dir, 'reward_config.json'), 'utf8')) as { backbone?: { base?: string; base_absolute?: string } };
    for (const p of [rm.backbone?.base && path.resolve(dir, rm.backbone.base), rm.backbone?.base_absolute]) if (p && hasModel(p)) return p;
  } catch {
    /* not a reward model */
  }
  try {
    const cfg = JSON.parse(fs.readFileSync(path.join(adapter, 'adapter_config.json'), 'utf8')) as { base_model_name_or_path?: unknown };
    const p = cfg.base_model_name_or_path;
    if (typeof p === 'string' && p !== '' && hasModel(path.resolve(userCwd(), p))) return path.resolve(userCwd(), p);
  } catch (err) {
    throw new ConfigError(`${path.join(adapter, 'adapter_config.json')}: ${(err as Error).message}`);
  }
  return null;
}

export async function exportGguf(argv: string[]): Promise<void> {
  const { args, flags } = positionals(argv);
  const parsed = parseFlags('export-gguf', flags, FIELDS, ['base', 'tokenizer']);
  if (parsed.help) return void console.log(helpText('promedical export-gguf MODEL_DIR OUT.gguf [flags]', ABOUT, FIELDS, DEFAULTS, NOTES));
  for (const [k, v] of Object.entries(parsed.values)) {
    const problem = fieldProblem(FIELDS[k], v);
    if (problem) throw new ConfigError(`${flagOf(k)} ${JSON.stringify(v)}: ${problem}`);
  }
  const a = { ...DEFAULTS, ...parsed.values } as { dtype: GgufDtype; lora: boolean; base: string | null; tokenizer: string | null; backend: 'auto' };
  if (args.length !== 2) throw new UsageError(`expected two arguments, MODEL_DIR and OUT.gguf; got ${args.length}${args.length ? `: ${args.map((x) => JSON.stringify(x)).join(' ')}` : ''}`);
  const [dir, out] = args.map((p) => path.resolve(userCwd(), p));
  requireFile('MODEL_DIR', dir);
  if (fs.existsSync(out) && fs.statSync(out).isDirectory()) throw new ConfigError(`OUT.gguf ${out}: is a folder; give the path of the .gguf file to write`);
  const log = say('export-gguf');

  const adapter = adapterDir(dir);
  if (a.lora && !adapter) throw new ConfigError(`MODEL_DIR ${dir}: no LoRA adapter there (no adapter_config.json in it or in its adapter/ folder)`);
  if (adapter) {
    if (a.tokenizer) throw new UsageError('--tokenizer applies to a model export; a LoRA adapter GGUF holds no tokenizer');
    if (a.dtype === 'Q8_0') throw new UsageError('--dtype Q8_0 applies to a model export; write LoRA adapters as F32, F16 or BF16');
    const base = a.base ?? recordedBase(dir, adapter);
    if (!base) throw new ConfigError(`MODEL_DIR ${dir}: its LoRA adapter records no local base model; pass --base with the base Qwen3 folder`);
    requireModelDir('--base', base);
    readQwen3Config(path.join(base, 'config.json'));
    await initBackend(a.backend, { log: () => {} });
    log(`writing the LoRA adapter ${adapter} (base ${base}) to ${out}`);
    const model = await loadQwen3(base);
    try {
      loadLora(model, adapter);
      const r = await saveLoraGguf(model, out, { dtype: a.dtype as Exclude<GgufDtype, 'Q8_0'> });
      console.log(JSON.stringify({ file: r.file, kind: 'lora', dtype: a.dtype, bytes: r.bytes, tensors: r.tensors, model: base, adapter, tokenizer: null }));
    } finally {
      model.dispose();
    }
    return;
  }
  if (a.base) throw new UsageError(`--base applies to a LoRA adapter export; MODEL_DIR ${dir} holds no adapter`);
  requireModelDir('MODEL_DIR', dir);
  readQwen3Config(path.join(dir, 'config.json')); // a bad config.json fails here, before the weights are read
  if (a.tokenizer && !fs.existsSync(path.join(a.tokenizer, 'tokenizer.json'))) throw new ConfigError(`--tokenizer ${a.tokenizer}: no tokenizer.json there`);
  await initBackend(a.backend, { log: () => {} });
  const { model, tokenizer } = await loadPretrained(dir, a.tokenizer ? { tokenizerDir: a.tokenizer } : {});
  try {
    log(`writing ${dir} (${a.dtype}, tokenizer ${tokenizer.source}) to ${out}`);
    const r = await saveGguf(model, out, { dtype: a.dtype, tokenizer });
    console.log(JSON.stringify({ file: r.file, kind: 'model', dtype: a.dtype, bytes: r.bytes, tensors: r.tensors, model: dir, adapter: null, tokenizer: tokenizer.source }));
  } finally {
    model.dispose();
  }
}
