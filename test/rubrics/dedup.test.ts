// Near-duplicate detection. Expected values: small cases worked out by hand, and for the planted
// set (test/helpers/near_duplicates.ts, truth known by construction) an independent brute force:
// every pair's exact Jaccard of word 3-gram sets, computed here with plain string sets.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { loadRecords } from '../../src/data/records.js';
import { dedupe, Deduplicator, jaccard, normalise, shingleSet } from '../../src/rubrics/dedup.js';
import { instructionText } from '../../src/rubrics/prepare.js';
import { ROOT } from '../helpers/cli.js';
import { plantedSet, type PlantedItem } from '../helpers/near_duplicates.js';

test('normalise: NFKC, lower case, punctuation and symbols gone, whitespace collapsed', () => {
  assert.is(normalise('  Ｈｅｌｌｏ,\tDoctor!!  Is 5 mg OK?  '), 'hello doctor is 5 mg ok');
  // NFKC turns ½ into 1, U+2044 FRACTION SLASH (a math symbol), 2.
  assert.is(normalise('Dose: ½ tablet — twice/day'), 'dose 1 2 tablet twice day');
});

test('exact Jaccard of word 3-gram sets, by hand', () => {
  // "a b c d" -> {a b c, b c d}; "a b c e" -> {a b c, b c e}: 1 shared of 3.
  assert.is(jaccard(shingleSet('a b c d'), shingleSet('A b, c d.')), 1);
  assert.ok(Math.abs(jaccard(shingleSet('a b c d'), shingleSet('a b c e')) - 1 / 3) < 1e-12);
  // Texts of at most 3 words are one shingle each.
  assert.is(jaccard(shingleSet('chest pain'), shingleSet('Chest  pain!')), 1);
  assert.is(jaccard(shingleSet('chest pain'), shingleSet('back pain')), 0);
});

test('the first of a group is kept; a later copy names it, with its Jaccard', () => {
  const q = 'I have had a headache for three days and ibuprofen does not help at all, what should I do';
  const items = [
    { id: 'a', text: q },
    { id: 'b', text: 'My knee hurts after running a marathon yesterday and it is swollen, should I see someone' },
    { id: 'c', text: q.toUpperCase().replace(/,/g, ';') },
    { id: 'd', text: q.replace('three', 'four') },
  ];
  const { kept, duplicates } = dedupe(items, (i) => i.text);
  assert.equal(kept.map((i) => i.id), ['a', 'b', 'd']);
  // d: 19 words, 17 shingles; "three" sits in 3 of them: (17 - 3) / (17 + 3) = 0.7 < 0.8, so d
  // is NOT a duplicate at 0.8, but is at 0.7.
  assert.equal(duplicates, [{ id: 'c', duplicate_of: 'a', jaccard: 1 }]);
  const loose = dedupe(items, (i) => i.text, { threshold: 0.7 });
  assert.equal(loose.duplicates.map((d) => [d.id, d.duplicate_of, d.jaccard]), [['c', 'a', 1], ['d', 'a', 0.7]]);
});

test('a duplicate is matched to the most similar kept item; the result does not depend on the seed', () => {
  const base = 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen';
  const near = base.replace('sixteen', 'xvi'); // 14 shingles, 13 shared: 13 / 15 = 0.8667
  const d = new Deduplicator();
  assert.is(d.add('far', base.replace('one two', 'uno dos')), null); // 14 shingles vs base: 12 / 16 = 0.75 -> kept
  assert.is(d.add('near', near), null); // vs far: 11 / 17 -> kept
  assert.equal(d.add('copy', base), { id: 'copy', duplicate_of: 'near', jaccard: 0.8667 });
  for (const seed of [1, 2, 3]) assert.equal(new Deduplicator({ seed }).add('x', base), null);
  assert.throws(() => new Deduplicator({ threshold: 0 }), /threshold/);
});

test('the threshold is inclusive: a one-word swap is a duplicate from 29 words on, not at 28', () => {
  const q = (drug: string, condition: string) => `Is it safe for me to take ${drug} for my back pain while I am on warfarin, given that I have ${condition} and I am 72 years old?`;
  // 28 words -> 26 shingles; the drug sits in 3: 23 shared / 29 = 0.7931.
  assert.equal(dedupe([{ id: 'a', t: q('ibuprofen', 'asthma') }, { id: 'b', t: q('naproxen', 'asthma') }], (x) => x.t).duplicates, []);
  // 29 words -> 27 shingles: 24 / 30 = 0.8 exactly.
  assert.equal(dedupe([{ id: 'a', t: q('ibuprofen', 'heart failure') }, { id: 'b', t: q('naproxen', 'heart failure') }], (x) => x.t).duplicates, [{ id: 'b', duplicate_of: 'a', jaccard: 0.8 }]);
});

/** The test's own exact Jaccard: word 3-grams as strings. */
function bruteJaccard(a: string, b: string): number {
  const grams = (t: string) => {
    const w = t.normalize('NFKC').toLowerCase().replace(/[^\p{L}\p{N}\s]+/gu, ' ').split(/\s+/).filter(Boolean);
    const s = new Set<string>();
    if (w.length <= 3) s.add(w.join(' '));
    for (let i = 0; i + 3 <= w.length; i++) s.add(w.slice(i, i + 3).join(' '));
    return s;
  };
  const A = grams(a), B = grams(b);
  let both = 0;
  for (const g of A) if (B.has(g)) both++;
  return both / (A.size + B.size - both);
}

test('planted near-duplicates of the bundled prompts: LSH finds every pair the brute force finds, precision 1', async () => {
  const records = [...(await loadRecords(path.join(ROOT, 'data/train.jsonl'))), ...(await loadRecords(path.join(ROOT, 'data/test.jsonl')))];
  const bases = records.map((r) => ({ id: r.id, text: instructionText(r) }));
  const items = plantedSet(bases, 7);
  const { duplicates } = dedupe(items, (i) => i.text);
  const byId = new Map(items.map((i) => [i.id, i]));
  // Brute force in the same order: an item is a duplicate when some earlier kept item reaches 0.8.
  const keptSoFar: PlantedItem[] = [];
  const expected = new Map<string, number>();
  for (const it of items) {
    const best = Math.max(0, ...keptSoFar.map((k) => bruteJaccard(it.text, k.text)));
    if (best >= 0.8) expected.set(it.id, best);
    else keptSoFar.push(it);
  }
  assert.equal(duplicates.map((d) => d.id).sort(), [...expected.keys()].sort(), 'the same items flagged as the brute force');
  for (const d of duplicates) {
    assert.ok(Math.abs(d.jaccard - expected.get(d.id)!) < 1e-4, `${d.id}: ${d.jaccard} vs ${expected.get(d.id)}`);
    assert.is(byId.get(d.duplicate_of)!.family, byId.get(d.id)!.family, `${d.id} matched within its family`);
  }
  // No bundled prompt duplicates another, and every format-only or opener copy is caught.
  assert.ok(duplicates.every((d) => byId.get(d.id)!.edit !== undefined));
  for (const it of items.filter((i) => i.edit === 'format' || i.edit === 'opener')) assert.ok(expected.has(it.id), `${it.id} is found`);
});

test.run();
