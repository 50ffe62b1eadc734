// The work folder as review and export see it: WORK/drafts.jsonl (read, checked) and
// WORK/journal.jsonl (see journal.ts), and the rounds: round k holds items k*N .. (k+1)*N - 1 in
// drafts order.
import * as path from 'node:path';
import { jsonLines } from '../data/lines.js';
import { DataError, validateRecord } from '../data/schema.js';
import type { DraftItem } from './items.js';

export const draftsFile = (work: string) => path.join(work, 'drafts.jsonl');
export const journalFile = (work: string) => path.join(work, 'journal.jsonl');

/** Every DraftItem of a drafts file, checked as a schema-v1 record would be (its candidates as
 * the responses), with unique item ids. */
export async function readDrafts(file: string): Promise<DraftItem[]> {
  const items: DraftItem[] = [];
  const lines = new Map<string, number>();
  for await (const x of jsonLines(file)) {
    if (x instanceof DataError) throw x;
    const d = x.value as DraftItem;
    const fail = (field: string, reason: string): never => {
      throw new DataError(file, x.line, field, reason);
    };
    if (typeof d !== 'object' || d === null || !Array.isArray(d.candidates)) fail('candidates', 'expected an array of candidates');
    if (d.candidates.length === 0) fail('candidates', 'expected at least one candidate');
    d.candidates.forEach((c, i) => {
      if (typeof c?.model !== 'string') fail(`candidates[${i}].model`, 'expected a string');
    });
    validateRecord({ id: d.id, prompt: d.prompt, category: d.category, specialty: d.specialty, criteria: d.criteria, responses: d.candidates.map((c) => ({ id: c.id, text: c.text, grades: d.pregrades?.[c.id] })) }, file, x.line);
    for (const cand of Object.keys(d.pregrades ?? {})) if (!d.candidates.some((c) => c.id === cand)) fail(`pregrades.${cand}`, `no candidate has id "${cand}"`);
    if (lines.has(d.id)) fail('id', `item "${d.id}" is also on line ${lines.get(d.id)}`);
    lines.set(d.id, x.line);
    items.push(d);
  }
  return items;
}

export interface Rounds {
  size: number;
  count: number;
  /** The items of round k. */
  items(k: number): DraftItem[];
  /** The round of an item, by its index in drafts order. */
  of(index: number): number;
}

export function rounds(items: readonly DraftItem[], size: number): Rounds {
  return {
    size,
    count: Math.ceil(items.length / size),
    items: (k) => items.slice(k * size, (k + 1) * size),
    of: (index) => Math.floor(index / size),
  };
}
