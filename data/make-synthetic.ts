// Expands the bundled records into a large synthetic set for scale and speed tests.
//   npx tsx data/make-synthetic.ts --count 100000 --seed 0 --out /tmp/synthetic.jsonl
import * as fs from 'node:fs';
import { loadRecords, syntheticRecords } from '../src/index.js';

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(`Usage: npx tsx data/make-synthetic.ts [--count 10000] [--seed 0] [--out synthetic.jsonl]
Writes --count synthetic records (recombined from data/train.jsonl; synthetic, not medical advice)
to --out, for scale and speed tests.`);
  process.exit(0);
}
const flag = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const base = await loadRecords(new URL('./train.jsonl', import.meta.url).pathname);
const out = fs.createWriteStream(flag('--out', 'synthetic.jsonl'));
let n = 0;
for (const r of syntheticRecords(base, Number(flag('--count', '10000')), flag('--seed', '0'))) {
  if (!out.write(JSON.stringify(r) + '\n')) await new Promise((resolve) => out.once('drain', resolve));
  n++;
}
out.end();
console.error(`wrote ${n} records to ${flag('--out', 'synthetic.jsonl')}`);
