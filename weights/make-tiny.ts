// Writes weights/qwen3-tiny: the bundled tiny Qwen3 (full 151,936-token vocabulary, so Qwen3's
// real tokenizer works; a small body, random weights, seed 0) with Qwen3's tokenizer files.
// Run: npx tsx weights/make-tiny.ts [--out DIR]. Examples and tests call ensureTinyQwen3 instead.
import { ensureTinyQwen3 } from '../src/index.js';

const i = process.argv.indexOf('--out');
const dir = await ensureTinyQwen3(i > 0 ? process.argv[i + 1] : undefined, { force: true });
console.log(dir);
