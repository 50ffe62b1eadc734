// The bundled synthetic data set validates in strict mode and has the shape the issue promises;
// the synthetic expander is seeded and keeps records valid.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadRecords } from '../../src/data/records.js';
import { gradeValue, TIERS, validateRecord, type RubricRecord } from '../../src/data/schema.js';
import { syntheticRecords } from '../../src/data/synthetic.js';

const dataFile = (name: string) => new URL(`../../data/${name}`, import.meta.url).pathname;
let train: RubricRecord[] = [];
let held: RubricRecord[] = [];
test.before(async () => {
  train = await loadRecords(dataFile('train.jsonl'));
  held = await loadRecords(dataFile('test.jsonl'));
});

test('at least 80 records over at least 10 specialties, split by record with no overlap', () => {
  const all = [...train, ...held];
  assert.ok(all.length >= 80, `${all.length} records`);
  assert.ok(new Set(all.map((r) => r.specialty)).size >= 10);
  const ids = all.map((r) => r.id);
  assert.is(new Set(ids).size, ids.length, 'ids unique across the split');
  assert.ok(held.length >= 16, `${held.length} held-out records`);
  const prompts = new Set(train.map((r) => JSON.stringify(r.prompt)));
  assert.not.ok(held.some((r) => prompts.has(JSON.stringify(r.prompt))), 'no test prompt appears in train');
});

test('every record: 4-8 criteria over all three tiers, weights summing to 1, 3-4 fully graded responses, marked synthetic', () => {
  let withViolation = 0;
  for (const r of [...train, ...held]) {
    assert.ok(r.criteria.length >= 4 && r.criteria.length <= 8, r.id);
    for (const t of TIERS) assert.ok(r.criteria.some((c) => c.tier === t), `${r.id} has ${t}`);
    const w = r.criteria.filter((c) => c.tier === 'proficiency').reduce((a, c) => a + (c.weight ?? NaN), 0);
    assert.ok(Math.abs(w - 1) < 1e-9, `${r.id}: proficiency weights sum to ${w}`);
    assert.ok(r.responses.length >= 3 && r.responses.length <= 4, r.id);
    for (const resp of r.responses) for (const c of r.criteria) assert.type(resp.grades?.[c.id], 'boolean', `${r.id}/${resp.id}/${c.id}`);
    const safety = r.criteria.filter((c) => c.tier === 'safety');
    if (r.responses.some((resp) => safety.some((c) => !gradeValue(resp.grades![c.id])))) withViolation++;
    assert.ok(r.responses.some((resp) => safety.every((c) => resp.grades![c.id] === true)), `${r.id}: some response is safe`);
    assert.equal(r.source, { format: 'promedical', synthetic: true });
  }
  assert.ok(withViolation >= 20, `${withViolation} records show a safety violation`);
});

test('the synthetic expander is seeded, valid and keeps grades attached to the same texts', () => {
  const a = [...syntheticRecords(train, 300, 7)];
  const b = [...syntheticRecords(train, 300, 7)];
  assert.equal(a, b);
  assert.not.equal(a, [...syntheticRecords(train, 300, 8)]);
  const byId = new Map(train.map((r) => [r.id, r]));
  for (const r of a) {
    validateRecord(r);
    const base = byId.get(r.source!.expanded_from as string)!;
    for (const resp of r.responses) assert.equal(resp, base.responses.find((x) => x.id === resp.id));
  }
});

test.run();
