// Writes the tiny Qwen3 (full 151,936-token vocabulary, so Qwen3's real tokenizer works; a small
// body, random weights, seed 0) with Qwen3's tokenizer files, and prints its folder.
//   npx tsx weights/make-tiny.ts [--out DIR]     (default: the user cache, see ensureTinyQwen3)
import { ensureTinyQwen3 } from '../src/index.js';

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log('Usage: npx tsx weights/make-tiny.ts [--out DIR]\nWrites the tiny random Qwen3 (seed 0) to DIR (default: $PROMEDICAL_CACHE/qwen3-tiny or ~/.cache/promedical/qwen3-tiny) and prints the folder.');
  process.exit(0);
}
const i = args.indexOf('--out');
if (i >= 0 && !args[i + 1]) {
  console.error('make-tiny: error: --out needs a folder');
  process.exit(2);
}
console.log(await ensureTinyQwen3(i >= 0 ? args[i + 1] : undefined, { force: true }));
