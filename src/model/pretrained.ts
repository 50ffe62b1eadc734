// Hugging Face folder layout for Qwen3: config.json + model.safetensors, or shards + index.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ensureBackend } from '../ops/backend.js';
import { qwen3ConfigToHF, readQwen3Config, type Qwen3Config } from './config.js';
import { Qwen3ForCausalLM, qwen3TensorShapes } from './qwen3.js';
import { readSafetensors, writeSafetensors, type SafetensorsFile } from './safetensors.js';

export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

/**
 * Loads a Hugging Face Qwen3 folder (config.json and model.safetensors or shards with
 * model.safetensors.index.json; F32 / BF16 / F16). Tensors are read and upcast one at a time, so
 * the file bytes and the float32 weights never sit in memory together. Missing, unexpected and
 * mis-shaped tensors are all reported by name in one error.
 */
export async function loadQwen3(dir: string): Promise<Qwen3ForCausalLM> {
  await ensureBackend();
  const config = readQwen3Config(path.join(dir, 'config.json'));
  const st = readSafetensors(dir);
  const weights = new Map<string, tf.Tensor>();
  try {
    const shapes = qwen3TensorShapes(config);
    checkNames(st, shapes, config, dir);
    for (const [name] of shapes) {
      weights.set(name, readWeight(st, name));
      await tf.nextFrame(); // lets a GPU backend upload while the next tensor is read
    }
    return new Qwen3ForCausalLM(config, weights);
  } finally {
    st.close();
    tf.dispose([...weights.values()]); // the variables hold their own references
  }
}

function checkNames(st: SafetensorsFile, shapes: Map<string, number[]>, config: Qwen3Config, dir: string): void {
  const problems: string[] = [];
  for (const [name, shape] of shapes) {
    if (!st.has(name)) problems.push(`missing tensor ${name} [${shape}]`);
    else if (!tf.util.arraysEqual(st.info(name).shape, shape)) problems.push(`${name} has shape [${st.info(name).shape}], config.json implies [${shape}]`);
  }
  for (const name of st.names) {
    // transformers drops lm_head.weight from tied checkpoints on load; so do we.
    if (!shapes.has(name) && !(name === 'lm_head.weight' && config.tieWordEmbeddings)) problems.push(`unexpected tensor ${name}`);
  }
  if (problems.length) throw new CheckpointError(`${dir}: the checkpoint does not match its config.json:\n  ${problems.join('\n  ')}`);
}

function readWeight(st: SafetensorsFile, name: string): tf.Tensor {
  if (st.info(name).dtype.startsWith('I') || st.info(name).dtype.startsWith('U') || st.info(name).dtype === 'BOOL') {
    throw new CheckpointError(`${st.path}: ${name} has integer dtype ${st.info(name).dtype}; weights must be floats`);
  }
  return st.tensor(name);
}

export interface SaveOptions {
  /** On-disk dtype (default: the config's torch_dtype). */
  dtype?: 'float32' | 'bfloat16' | 'float16';
  /** Shard when the weights exceed this many bytes (default 5 GB, as transformers). */
  maxShardBytes?: number;
  /**
   * The tokenizer to save beside the weights: a ChatTokenizer (or anything whose `source` is the
   * path of its tokenizer.json); its tokenizer.json and tokenizer_config.json are copied, so the
   * folder loads with its tokenizer. (A structural type: the model layer does not import data.)
   */
  tokenizer?: { readonly source: string };
}

/** The tokenizer files a Hugging Face folder carries (generation_config.json is the model's). */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json'] as const;

const DISK_DTYPE = { float32: 'F32', bfloat16: 'BF16', float16: 'F16' } as const;
const BYTES = { float32: 4, bfloat16: 2, float16: 2 } as const;

/**
 * Writes `model` as a folder that Hugging Face transformers loads: config.json as transformers
 * writes it, one model.safetensors or numbered shards with an index.
 * The folder is built beside `dir` and moved into place, so a crash mid-save leaves any previous
 * checkpoint in `dir` intact; other files already in `dir` (e.g. the tokenizer's) are kept.
 * With `opts.tokenizer`, its tokenizer.json and tokenizer_config.json are written too.
 */
export async function saveQwen3(model: Qwen3ForCausalLM, dir: string, opts: SaveOptions = {}): Promise<void> {
  const dtype = opts.dtype ?? model.config.torchDtype;
  const maxShard = opts.maxShardBytes ?? 5e9;
  const params = model.namedParameters();
  const names = [...qwen3TensorShapes(model.config).keys()];
  const size = (name: string) => params.get(name)!.size * BYTES[dtype];

  // Greedy sharding in checkpoint order, as transformers' split_torch_state_dict_into_shards.
  const shards: string[][] = [[]];
  let current = 0;
  for (const name of names) {
    if (current > 0 && current + size(name) > maxShard) {
      shards.push([]);
      current = 0;
    }
    shards.at(-1)!.push(name);
    current += size(name);
  }
  const fileName = (i: number) =>
    shards.length === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;

  const target = path.resolve(dir);
  // Checked before anything is written: a missing tokenizer file fails the save, not the next load.
  const tokenizerDir = opts.tokenizer ? path.dirname(path.resolve(opts.tokenizer.source)) : undefined;
  for (const f of tokenizerDir ? TOKENIZER_FILES : []) {
    if (!fs.existsSync(path.join(tokenizerDir!, f))) throw new CheckpointError(`${path.join(tokenizerDir!, f)}: not found; the tokenizer (source ${opts.tokenizer!.source}) cannot be saved with the model`);
  }
  const staging = `${target}.tmp-${process.pid}-${Date.now()}`;
  fs.mkdirSync(staging, { recursive: true });
  try {
    const weightMap: Record<string, string> = {};
    for (const [i, shard] of shards.entries()) {
      const tensors = new Map<string, tf.Tensor>();
      for (const name of shard) {
        tensors.set(name, params.get(name)!);
        weightMap[name] = fileName(i);
      }
      await writeSafetensors(path.join(staging, fileName(i)), tensors, { dtype: DISK_DTYPE[dtype], metadata: { format: 'pt' } });
    }
    if (shards.length > 1) {
      const totalSize = names.reduce((a, n) => a + size(n), 0);
      fs.writeFileSync(path.join(staging, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n');
    }
    const config = { ...qwen3ConfigToHF(model.config), torch_dtype: dtype };
    fs.writeFileSync(path.join(staging, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    // Qwen3's bos_token_id is <|endoftext|>, which ends base-model text: both ids stop generation.
    const { bosTokenId, eosTokenId } = model.config;
    const generation = { bos_token_id: bosTokenId, eos_token_id: [...new Set([eosTokenId, bosTokenId])], pad_token_id: bosTokenId };
    fs.writeFileSync(path.join(staging, 'generation_config.json'), JSON.stringify(generation, null, 2) + '\n');
    for (const f of tokenizerDir ? TOKENIZER_FILES : []) fs.copyFileSync(path.join(tokenizerDir!, f), path.join(staging, f));
    // Files the save does not produce (tokenizer files, a README) carry over; old weights do not.
    if (fs.existsSync(target)) {
      for (const f of fs.readdirSync(target)) {
        if (fs.existsSync(path.join(staging, f)) || /\.safetensors$|^model\.safetensors\.index\.json$/.test(f)) continue;
        fs.cpSync(path.join(target, f), path.join(staging, f), { recursive: true });
      }
    }
    fsyncDir(staging);
    // Swap the folders: the old one is renamed away first and only removed once the new one is in place.
    const old = `${target}.old-${process.pid}-${Date.now()}`;
    const hadOld = fs.existsSync(target);
    if (hadOld) fs.renameSync(target, old);
    fs.renameSync(staging, target);
    fsyncDir(path.dirname(target));
    if (hadOld) fs.rmSync(old, { recursive: true, force: true });
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw err;
  }
}

function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    /* some platforms cannot sync folders */
  }
}

/**
 * Writes a randomly initialised Qwen3 checkpoint (seeded, so the same seed gives the same bytes)
 * in the Hugging Face layout: how the bundled tiny model and benchmark models are made.
 */
export async function writeRandomQwen3(dir: string, config: Qwen3Config, opts: SaveOptions & { seed?: number } = {}): Promise<void> {
  await ensureBackend();
  const model = Qwen3ForCausalLM.random(config, opts.seed ?? 0);
  try {
    await saveQwen3(model, dir, opts);
  } finally {
    model.dispose();
  }
}
