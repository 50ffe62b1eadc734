// A Hugging Face Qwen3 folder with its tokenizer, as transformers' from_pretrained. It lives here,
// not in src/model, because it joins the model layer and the data layer (the tokenizer).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadTokenizer, type ChatTokenizer } from '../data/tokenizer.js';
import { loadQwen3 } from '../model/pretrained.js';
import type { Qwen3ForCausalLM } from '../model/qwen3.js';

export interface LoadPretrainedOptions {
  /** The tokenizer's folder (default: `dir` when it holds tokenizer.json, else Qwen3's bundled one). */
  tokenizerDir?: string;
}

/**
 * Loads a Hugging Face Qwen3 folder (see loadQwen3) and its tokenizer: the folder's own
 * tokenizer.json + tokenizer_config.json when it has them, else the bundled Qwen3 tokenizer.
 */
export async function loadPretrained(dir: string, opts: LoadPretrainedOptions = {}): Promise<{ model: Qwen3ForCausalLM; tokenizer: ChatTokenizer }> {
  // The tokenizer first: it is cheap, and a broken one fails before the weights are read.
  const tokenizer = loadTokenizer(opts.tokenizerDir ?? (fs.existsSync(path.join(dir, 'tokenizer.json')) ? dir : undefined));
  const model = await loadQwen3(dir);
  return { model, tokenizer };
}
