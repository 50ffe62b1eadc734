// A seeded set of planted near-duplicates for measuring dedup: each base text is followed (later
// in the set, in shuffled order) by edited copies of known kinds, so every pair's truth is known
// by construction. Used by test/rubrics/dedup.test.ts and bench/rubrics_dedup.ts.
import { Rng } from '../../src/data/rng.js';

export const EDITS = ['format', 'opener', 'one-word', 'two-words', 'ten-percent', 'quarter'] as const;
export type Edit = (typeof EDITS)[number];

export const EDIT_ABOUT: Record<Edit, string> = {
  format: 'case, punctuation, spacing and full-width letters changed',
  opener: 'a greeting put in front ("Hi, ", "Quick question: ", ...)',
  'one-word': 'one word replaced',
  'two-words': 'two words replaced',
  'ten-percent': '10% of the words replaced',
  quarter: '25% of the words replaced (a rewrite, beyond 0.8 by design)',
};

export interface PlantedItem {
  id: string;
  text: string;
  /** The base it was made from (itself for a base). */
  family: string;
  /** The edit that made it; none for a base. */
  edit?: Edit;
}

const OPENERS = ['Hi, ', 'Quick question: ', 'Asking for a family member: ', 'Hello doctor, ', 'Sorry to bother you, but '];
const FILLERS = ['really', 'maybe', 'today', 'now', 'also', 'honestly', 'still', 'lately'];

function replaceWords(text: string, count: number, rng: Rng): string {
  const words = text.split(' ');
  const slots = rng.shuffle(words.map((_, i) => i)).slice(0, Math.min(count, words.length));
  for (const i of slots) words[i] = FILLERS[rng.int(FILLERS.length)];
  return words.join(' ');
}

/** Full-width forms of some ASCII letters (NFKC folds them back). */
function fullWidth(text: string, rng: Rng): string {
  return [...text].map((ch) => (/[a-z]/i.test(ch) && rng.next() < 0.1 ? String.fromCharCode(ch.charCodeAt(0) + 0xfee0) : ch)).join('');
}

function edited(text: string, edit: Edit, rng: Rng): string {
  const n = text.split(' ').length;
  switch (edit) {
    case 'format':
      return fullWidth(text.split(' ').map((w) => (rng.next() < 0.3 ? w.toUpperCase() : w)).join('  ').replace(/[,.]/g, (p) => (rng.next() < 0.5 ? '' : `${p}${p}`)), rng);
    case 'opener':
      return OPENERS[rng.int(OPENERS.length)] + text;
    case 'one-word':
      return replaceWords(text, 1, rng);
    case 'two-words':
      return replaceWords(text, 2, rng);
    case 'ten-percent':
      return replaceWords(text, Math.ceil(n * 0.1), rng);
    case 'quarter':
      return replaceWords(text, Math.ceil(n * 0.25), rng);
  }
}

/** The bases in their order, then one copy per base and edit kind, shuffled by the seed. */
export function plantedSet(bases: readonly { id: string; text: string }[], seed = 0): PlantedItem[] {
  const rng = new Rng(`planted:${seed}`);
  const copies = bases.flatMap((b) => EDITS.map((edit): PlantedItem => ({ id: `${b.id}~${edit}`, text: edited(b.text, edit, rng), family: b.id, edit })));
  return [...bases.map((b) => ({ id: b.id, text: b.text, family: b.id })), ...rng.shuffle(copies)];
}
