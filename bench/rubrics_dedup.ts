// Dedup and the difficulty filter of `rubrics prepare`, measured. Not part of npm test.
//
//   npx tsx bench/rubrics_dedup.ts [--seeds N] [--scale N]   (default 5 seeds of the planted set,
//   200,000 texts for the scale run)
//
// 1. The bundled prompts (data/train.jsonl + data/test.jsonl, synthetic): near-duplicates found,
//    and the highest exact Jaccard of any two (the margin under the threshold).
// 2. A seeded planted set (test/helpers/near_duplicates.ts): every bundled prompt plus one edited
//    copy per edit kind, shuffled; truth by construction. Recall per edit kind and precision, at
//    thresholds 0.7 / 0.8 / 0.9, over the seeds; precision counts flags on hard negatives too
//    (distinct templated questions a key term apart).
// 3. The difficulty filter end to end: `prepare` on the bundled prompts plus their format-only
//    copies, against a loopback chat-completions server (no LLM: a scripted judge gives each id a
//    seeded score 0-10); every instruction must be accounted for once: kept, filtered, duplicate
//    or failed, and kept exactly when 5 <= score <= 9.
// Also the speed and heap of one pass over --scale random texts with planted copies.
// Prints tables on stderr and one JSON line on stdout.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadRecords } from '../src/data/records.js';
import { Rng } from '../src/data/rng.js';
import { createChatClient } from '../src/rubrics/chat_client.js';
import { dedupe, jaccard, shingleSet } from '../src/rubrics/dedup.js';
import { instructionText, prepareInstructions, type Instruction } from '../src/rubrics/prepare.js';
import { startChatFixture } from '../test/helpers/openai_chat_fixture.js';
import { EDIT_ABOUT, EDITS, plantedSet, type Edit } from '../test/helpers/near_duplicates.js';
import { kindOf } from '../test/helpers/rubrics_script.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const seeds = args.includes('--seeds') ? Number(args[args.indexOf('--seeds') + 1]) : 5;
const err = (line = '') => process.stderr.write(line + '\n');

const records = [...(await loadRecords(path.join(root, 'data/train.jsonl'))), ...(await loadRecords(path.join(root, 'data/test.jsonl')))];
const bases = records.map((r) => ({ id: r.id, text: instructionText(r) }));

// 1. The bundled prompts.
const bundled = dedupe(bases, (b) => b.text);
const sets = bases.map((b) => shingleSet(b.text));
let closest = { a: '', b: '', jaccard: 0 };
for (let i = 0; i < sets.length; i++) {
  for (let j = i + 1; j < sets.length; j++) {
    const s = jaccard(sets[i], sets[j]);
    if (s > closest.jaccard) closest = { a: bases[i].id, b: bases[j].id, jaccard: Math.round(s * 1e4) / 1e4 };
  }
}
err(`bundled prompts: ${bases.length} (data/train.jsonl + data/test.jsonl), near-duplicates at 0.8: ${bundled.duplicates.length}; closest pair ${closest.a} / ${closest.b}, Jaccard ${closest.jaccard}`);

// 2. The planted set.
const THRESHOLDS = [0.7, 0.8, 0.9];
type Tally = { planted: number; found: number; jaccards: number[] };
const perEdit = new Map<string, Tally>(THRESHOLDS.flatMap((t) => EDITS.map((e) => [`${t}:${e}`, { planted: 0, found: 0, jaccards: [] }] as [string, Tally])));
const flagged = new Map(THRESHOLDS.map((t) => [t, { all: 0, right: 0 }]));
let items = 0;
const t0 = performance.now();
let dedupMs = 0;
for (let seed = 0; seed < seeds; seed++) {
  const set = plantedSet(bases, seed);
  items += set.length;
  const byId = new Map(set.map((x) => [x.id, x]));
  const baseSet = new Map(bases.map((b, i) => [b.id, sets[i]]));
  for (const t of THRESHOLDS) {
    const s0 = performance.now();
    const { duplicates } = dedupe(set, (x) => x.text, { threshold: t, seed });
    dedupMs += performance.now() - s0;
    const found = new Set<string>();
    const f = flagged.get(t)!;
    for (const d of duplicates) {
      f.all++;
      if (byId.get(d.duplicate_of)!.family === byId.get(d.id)!.family) {
        f.right++;
        found.add(d.id);
      }
    }
    for (const x of set) {
      if (!x.edit) continue;
      const tally = perEdit.get(`${t}:${x.edit}`)!;
      tally.planted++;
      if (found.has(x.id)) tally.found++;
      if (t === 0.8) tally.jaccards.push(jaccard(shingleSet(x.text), baseSet.get(x.family)!));
    }
  }
}
const totalMs = performance.now() - t0;

// Hard negatives: distinct questions from one template, differing in one or two key terms (a drug,
// a condition): not duplicates, however alike they look. Every flag among them is a false positive.
const DRUGS = ['ibuprofen', 'naproxen', 'aspirin', 'paracetamol', 'tramadol', 'codeine'];
const WITH = ['warfarin', 'apixaban', 'lithium', 'methotrexate'];
const HAVE = ['kidney disease', 'a stomach ulcer', 'asthma', 'heart failure'];
const templated = DRUGS.flatMap((d) => WITH.flatMap((w) => HAVE.map((h) => ({ id: `${d}+${w}+${h}`, text: `Is it safe for me to take ${d} for my back pain while I am on ${w}, given that I have ${h} and I am 72 years old?` }))));
const falsePositives = Object.fromEntries(THRESHOLDS.map((t) => [String(t), dedupe(templated, (x) => x.text, { threshold: t }).duplicates.length]));
for (const t of THRESHOLDS) flagged.get(t)!.all += falsePositives[t];
const round = (x: number, d = 4) => Math.round(x * 10 ** d) / 10 ** d;
// Near-duplicates: copies at most two words away; the 10% and 25% rewrites are shown per kind only.
const near: Edit[] = ['format', 'opener', 'one-word', 'two-words'];
err('');
err(`planted near-duplicates: ${seeds} seeds x (${bases.length} bases + ${bases.length} x ${EDITS.length} copies) = ${items} items`);
err('| edit | copies | mean Jaccard to base | recall @0.7 | recall @0.8 | recall @0.9 |');
err('|---|---|---|---|---|---|');
const table: Record<string, Record<string, number>> = {};
for (const e of EDITS) {
  const at = (t: number) => perEdit.get(`${t}:${e}`)!;
  const js = at(0.8).jaccards;
  table[e] = { copies: at(0.8).planted, mean_jaccard: round(js.reduce((a, b) => a + b, 0) / js.length, 3), ...Object.fromEntries(THRESHOLDS.map((t) => [`recall_${t}`, round(at(t).found / at(t).planted, 3)])) };
  err(`| ${e}: ${EDIT_ABOUT[e]} | ${table[e].copies} | ${table[e].mean_jaccard} | ${THRESHOLDS.map((t) => table[e][`recall_${t}`]).join(' | ')} |`);
}
const summary = Object.fromEntries(THRESHOLDS.map((t) => {
  const planted = near.reduce((a, e) => a + perEdit.get(`${t}:${e}`)!.planted, 0);
  const found = near.reduce((a, e) => a + perEdit.get(`${t}:${e}`)!.found, 0);
  const f = flagged.get(t)!;
  return [String(t), { precision: round(f.all ? f.right / f.all : 1, 4), recall_near: round(found / planted, 4), flagged: f.all, hard_negatives_flagged: falsePositives[t] }];
}));
err('');
err(`hard negatives: ${templated.length} distinct questions from one template, one to three key terms apart (drug, co-medication, condition)`);
err('| threshold | flagged | of them hard negatives (false) | precision | recall (copies at most two words away) |');
err('|---|---|---|---|---|');
for (const t of THRESHOLDS) err(`| ${t} | ${summary[t].flagged} | ${falsePositives[t]} | ${summary[t].precision} | ${summary[t].recall_near} |`);
err(`dedup speed: ${Math.round((items * THRESHOLDS.length) / (dedupMs / 1000))} items/s (${round(totalMs / 1000, 1)} s in all, one core)`);

// Scale: random 40-word texts over a 5,000-word vocabulary (far apart), every tenth followed later
// by a copy with a greeting in front; time and heap for the whole pass.
const SCALE = args.includes('--scale') ? Number(args[args.indexOf('--scale') + 1]) : 200_000;
const words = Array.from({ length: 5000 }, (_, i) => `w${i.toString(36)}`);
const srng = new Rng('scale');
const randomText = () => Array.from({ length: 40 }, () => words[srng.int(words.length)]).join(' ');
const scaleItems: { id: string; text: string }[] = [];
for (let i = 0; scaleItems.length < SCALE; i++) {
  scaleItems.push({ id: `r${i}`, text: randomText() });
  if (i % 10 === 0) scaleItems.push({ id: `r${i}-copy`, text: `Hi, ${scaleItems.at(-1)!.text}` });
}
globalThis.gc?.();
const heap0 = process.memoryUsage().heapUsed;
const sc0 = performance.now();
const scaled = dedupe(scaleItems, (x) => x.text);
const scaleS = (performance.now() - sc0) / 1000;
const heapMb = Math.round((process.memoryUsage().heapUsed - heap0) / 2 ** 20);
const scaleRight = scaled.duplicates.filter((d) => d.id === `${d.duplicate_of}-copy`).length;
const scalePlanted = scaleItems.filter((x) => x.id.endsWith('-copy')).length;
err(`scale: ${scaleItems.length} texts (${scalePlanted} planted copies): ${round(scaleS, 1)} s (${Math.round(scaleItems.length / scaleS)} items/s), heap +${heapMb} MB; found ${scaleRight} of the copies, ${scaled.duplicates.length - scaleRight} other flags`);

// 3. The difficulty filter, end to end through prepare.
const scoreOf = (id: string) => new Rng(`difficulty:${id}`).int(11);
const instructions: Instruction[] = [
  ...records.map((r) => ({ id: r.id, prompt: r.prompt, source: { format: 'promedical' } })),
  ...records.slice(0, 20).map((r) => ({ id: `${r.id}-copy`, prompt: r.prompt.map((m) => ({ ...m, content: m.content.toUpperCase() })), source: { format: 'promedical' } })),
];
const fixture = await startChatFixture({
  reply: (b) => {
    if (kindOf(b) !== 'judge') return { content: 'a scripted answer' };
    const text = b.messages[1].content;
    const r = records.find((x) => text.includes(JSON.stringify(x.prompt[0].content)))!;
    return { content: JSON.stringify({ score: scoreOf(r.id), reason: 'scripted' }) };
  },
});
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'rubrics-bench-'));
let filter: Record<string, unknown>;
try {
  const client = (model: string) => createChatClient({ url: fixture.url, model, retryDelayMs: 1 });
  const s = await prepareInstructions({ work, instructions, judge: client('judge'), candidates: [client('alpha')], concurrency: 4 });
  const expectedKept = records.filter((r) => scoreOf(r.id) >= 5 && scoreOf(r.id) <= 9).length;
  const histogram = Array.from({ length: 11 }, (_, k) => records.filter((r) => scoreOf(r.id) === k).length);
  const accounted = s.prepared + s.filtered + s.duplicates + s.failed;
  filter = { instructions: s.instructions, duplicates: s.duplicates, kept: s.prepared, filtered: s.filtered, failed: s.failed, expected_kept: expectedKept, accounted_for: accounted === s.instructions, score_histogram: histogram };
  err('');
  err(`difficulty filter (scripted judge, scores 0-10 by a seeded hash of the id): ${s.instructions} instructions (${records.length} bundled + 20 upper-cased copies)`);
  err(`  duplicates ${s.duplicates}, kept ${s.prepared} (expected ${expectedKept}: scores 5-9), filtered ${s.filtered}, failed ${s.failed}; every instruction accounted for once: ${accounted === s.instructions}`);
  err(`  scores 0..10: ${histogram.join(' ')}`);
} finally {
  await fixture.close();
  fs.rmSync(work, { recursive: true, force: true });
}

console.log(JSON.stringify({
  bench: 'rubrics_dedup',
  bundled: { prompts: bases.length, duplicates: bundled.duplicates.length, closest },
  planted: { seeds, items, per_edit: table, by_threshold: summary, hard_negatives: templated.length },
  items_per_s: Math.round((items * THRESHOLDS.length) / (dedupMs / 1000)),
  scale: { items: scaleItems.length, planted: scalePlanted, found: scaleRight, other_flags: scaled.duplicates.length - scaleRight, seconds: round(scaleS, 1), heap_mb: heapMb },
  difficulty_filter: filter,
}));
