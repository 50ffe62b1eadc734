// A seeded generator that expands a few records into a large synthetic set for scale and speed
// tests. Each new record reuses a base record's criteria, responses and grades unchanged (so every
// grade stays true), with a varied opening of the question and the responses in another order.
// Not new medical content: volume only.
import { Rng } from './rng.js';
import type { RubricRecord } from './schema.js';

const OPENERS = ['', 'Quick question: ', 'Hi, ', 'Asking for a family member: ', 'I was wondering: '];

/** `count` records derived from `base`, the same for the same seed. */
export function* syntheticRecords(base: RubricRecord[], count: number, seed: number | string = 0): Generator<RubricRecord> {
  if (base.length === 0) throw new Error('syntheticRecords: no base records');
  const rng = new Rng(`synthetic:${seed}`);
  for (let i = 0; i < count; i++) {
    const b = base[rng.int(base.length)];
    const opener = OPENERS[rng.int(OPENERS.length)];
    const lastUser = b.prompt.map((m) => m.role).lastIndexOf('user');
    yield {
      ...b,
      id: `${b.id}-syn${i + 1}`,
      prompt: b.prompt.map((m, j) => (j === lastUser ? { ...m, content: opener + m.content } : { ...m })),
      responses: rng.shuffle(b.responses).map((r) => ({ ...r, grades: { ...r.grades } })),
      source: { format: 'promedical', synthetic: true, expanded_from: b.id, seed },
    };
  }
}

