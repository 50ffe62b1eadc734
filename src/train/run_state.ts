// Training checkpoints in a run folder:
//   <run>/checkpoints/step-000120/ model/ (HF folder) or adapter/ (PEFT), extra.safetensors,
//                                  optimizer/, trainer_state.json
// A checkpoint is built in a hidden .tmp- folder and renamed into place, so one either exists
// whole or not at all; a crash mid-save leaves the previous checkpoints as they were.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Qwen3ForCausalLM } from '../model/qwen3.js';
import { saveQwen3 } from '../model/pretrained.js';
import { saveLora } from '../model/lora.js';
import { atomicWrite, readSafetensors, writeSafetensors } from '../model/safetensors.js';
import type { AdamW } from './adamw.js';

/** What a trainer needs to continue exactly where it stopped. */
export interface TrainerState {
  step: number;
  /** The run's random stream (Rng.state()). */
  rng?: object;
  /** The data loader's position (epoch, index, order...), trainer-defined. */
  data?: unknown;
  /** model.dropoutSeed at the time of saving. */
  dropoutSeed?: number;
  [key: string]: unknown;
}

export interface CheckpointParts {
  model: Qwen3ForCausalLM;
  /** Trainable tensors outside the model (e.g. reward heads), by name. */
  extra?: Map<string, tf.Variable>;
  optimizer: AdamW;
  state: TrainerState;
}

const STEP_DIR = /^step-(\d+)$/;

export function checkpointsDir(runDir: string): string {
  return path.join(runDir, 'checkpoints');
}

/** Complete checkpoints of a run, oldest first. */
export function listCheckpoints(runDir: string): string[] {
  const dir = checkpointsDir(runDir);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((d) => STEP_DIR.test(d) && fs.existsSync(path.join(dir, d, 'trainer_state.json')))
    .sort((a, b) => Number(STEP_DIR.exec(a)![1]) - Number(STEP_DIR.exec(b)![1]))
    .map((d) => path.join(dir, d));
}

export function latestCheckpoint(runDir: string): string | null {
  return listCheckpoints(runDir).at(-1) ?? null;
}

/** NaN or Inf in the loss, the gradients or a trained tensor: the run stops (nothing is saved). */
export class NonFiniteError extends Error {
  override readonly name = 'NonFiniteError';
}

/** Throws NonFiniteError naming the first tensor that holds NaN or Inf (one host read for all). */
export async function assertFiniteParameters(params: Map<string, tf.Variable>, step: number, runDir: string): Promise<void> {
  const names = [...params.keys()];
  if (names.length === 0) return;
  const ok = tf.tidy(() => tf.stack(names.map((n) => params.get(n)!.isFinite().all())));
  const flags = await ok.data();
  ok.dispose();
  const bad = names.find((_, i) => !flags[i]);
  if (bad === undefined) return;
  throw new NonFiniteError(`step ${step}: parameter ${bad} holds NaN or Inf; not saved. Last good checkpoint: ${latestCheckpoint(runDir) ?? 'none saved yet'}`);
}

/** Writes a checkpoint for `parts.state.step` and keeps only the newest `keepLast`. */
export async function saveCheckpoint(runDir: string, parts: CheckpointParts, keepLast = 2): Promise<string> {
  const root = checkpointsDir(runDir);
  fs.mkdirSync(root, { recursive: true });
  // Leftovers of a save that was killed are never complete checkpoints: clear them.
  for (const d of fs.readdirSync(root)) if (d.startsWith('.tmp-')) fs.rmSync(path.join(root, d), { recursive: true, force: true });
  await assertFiniteParameters(new Map([...parts.model.trainableParameters(), ...(parts.extra ?? [])]), parts.state.step, runDir);
  const name = `step-${String(parts.state.step).padStart(6, '0')}`;
  const tmp = path.join(root, `.tmp-${name}-${process.pid}`);
  const final = path.join(root, name);
  fs.mkdirSync(tmp);
  try {
    if (parts.model.adapters.size > 0) await saveLora(parts.model, path.join(tmp, 'adapter'));
    else await saveQwen3(parts.model, path.join(tmp, 'model'), { dtype: 'float32' });
    if (parts.extra && parts.extra.size > 0) await writeSafetensors(path.join(tmp, 'extra.safetensors'), parts.extra);
    await parts.optimizer.save(path.join(tmp, 'optimizer'));
    const state = { ...parts.state, dropoutSeed: parts.model.dropoutSeed };
    await atomicWrite(path.join(tmp, 'trainer_state.json'), (fh) => fh.writeFile(JSON.stringify(state, null, 2) + '\n'));
    if (fs.existsSync(final)) fs.rmSync(final, { recursive: true });
    fs.renameSync(tmp, final);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  const all = listCheckpoints(runDir);
  for (const old of all.slice(0, Math.max(0, all.length - keepLast))) fs.rmSync(old, { recursive: true, force: true });
  return final;
}

/** Loads a checkpoint's weights into `parts` (matched by name) and returns its trainer state. */
export function restoreCheckpoint(dir: string, parts: Omit<CheckpointParts, 'state'>): TrainerState {
  const stateFile = path.join(dir, 'trainer_state.json');
  const state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as TrainerState;
  const adapter = path.join(dir, 'adapter', 'adapter_model.safetensors');
  if (fs.existsSync(adapter)) {
    const params = new Map([...parts.model.trainableParameters()].map(([n, v]) => [`base_model.model.${n}`, v]));
    assignAll(adapter, params);
  } else {
    assignAll(path.join(dir, 'model'), parts.model.namedParameters());
  }
  if (parts.extra && parts.extra.size > 0) assignAll(path.join(dir, 'extra.safetensors'), parts.extra);
  parts.optimizer.load(path.join(dir, 'optimizer'));
  if (typeof state.dropoutSeed === 'number') parts.model.dropoutSeed = state.dropoutSeed;
  return state;
}

function assignAll(source: string, params: Map<string, tf.Variable>): void {
  const st = readSafetensors(source);
  try {
    for (const [name, v] of params) {
      if (!st.has(name)) throw new Error(`${source}: the checkpoint has no ${name}`);
      const t = st.tensor(name);
      if (!tf.util.arraysEqual(t.shape, v.shape)) {
        t.dispose();
        throw new Error(`${source}: ${name} has shape [${st.info(name).shape}], the model [${v.shape}]`);
      }
      v.assign(t);
      t.dispose();
    }
  } finally {
    st.close();
  }
}

/** A run folder cannot be used as asked: a new run into a used folder, a resume without a run. */
export class RunDirError extends Error {
  override readonly name = 'RunDirError';
}

export interface OpenRunDirOptions {
  /** The run's settings, written to config.json (and compared on resume). */
  config: Record<string, unknown>;
  resume?: boolean;
  /** A new run in a used run folder deletes the previous run's files first. */
  overwrite?: boolean;
  /** Settings that may differ on resume (the step total, cadences, the backend). */
  resumable?: Iterable<string>;
}

/**
 * Checks that a run folder can be used as asked, writing nothing:
 * - a new run needs an empty (or missing) folder, or `overwrite` on a folder that holds a previous
 *   run (a folder with other files is never emptied: it is not ours);
 * - a resume needs a config.json and a checkpoint, and the same settings except `resumable` ones:
 *   every other difference is named in one error.
 */
export function checkRunDir(runDir: string, opts: OpenRunDirOptions): void {
  const file = path.join(runDir, 'config.json');
  const entries = fs.existsSync(runDir) ? fs.readdirSync(runDir) : [];
  if (opts.resume) {
    if (!fs.existsSync(file)) throw new RunDirError(`${runDir}: nothing to resume (no config.json there)`);
    if (!latestCheckpoint(runDir)) throw new RunDirError(`${runDir}: nothing to resume (no checkpoint saved yet); start again with --overwrite`);
    let saved: Record<string, unknown>;
    try {
      saved = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      throw new RunDirError(`${file}: not valid JSON (${(err as Error).message})`);
    }
    const free = new Set([...(opts.resumable ?? []), 'resume', 'overwrite']);
    const keys = new Set([...Object.keys(saved), ...Object.keys(opts.config)]);
    const changed = [...keys]
      .filter((k) => !free.has(k) && JSON.stringify(saved[k] ?? null) !== JSON.stringify(opts.config[k] ?? null))
      .map((k) => `${k} ${JSON.stringify(saved[k] ?? null)} -> ${JSON.stringify(opts.config[k] ?? null)}`);
    if (changed.length) {
      const may = [...free].filter((k) => k !== 'resume' && k !== 'overwrite');
      throw new RunDirError(`cannot resume ${runDir} with other settings: ${changed.join('; ')} (only ${may.join(', ') || 'nothing'} may change; --overwrite starts again)`);
    }
  } else if (entries.length > 0) {
    if (!opts.overwrite) {
      throw new RunDirError(`${runDir} is not empty (${entries.slice(0, 4).join(', ')}${entries.length > 4 ? ', ...' : ''}): --resume continues the run there, --overwrite replaces it, or choose another --out`);
    }
    const isRun = entries.some((e) => e === 'config.json' || e === 'checkpoints' || e === 'metrics.jsonl');
    if (!isRun) throw new RunDirError(`${runDir} holds files that are not a run's (no config.json, checkpoints/ or metrics.jsonl): --overwrite only replaces run folders`);
  }
}

/**
 * Opens a run folder (see checkRunDir for the rules): with `overwrite` the previous run's files
 * go, then config.json is written (atomically) with the settings of this run.
 */
export function openRunDir(runDir: string, opts: OpenRunDirOptions): void {
  checkRunDir(runDir, opts);
  if (!opts.resume && opts.overwrite && fs.existsSync(runDir)) {
    for (const e of fs.readdirSync(runDir)) fs.rmSync(path.join(runDir, e), { recursive: true, force: true });
  }
  fs.mkdirSync(runDir, { recursive: true });
  writeFileAtomicSync(path.join(runDir, 'config.json'), JSON.stringify(opts.config, null, 2) + '\n');
}

/** Writes beside the target and renames over it: readers see the old file or the new one. */
function writeFileAtomicSync(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}
