// HealthBench mode: example scores by hand (negative items, avoid-criteria, tags), the clipped mean
// and its bootstrap std (exact distribution of a two-value resample), and real records when present.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { healthbenchExample, healthbenchReport, healthbenchStat } from '../../src/eval/healthbench.js';
import { loadRecords } from '../../src/data/records.js';
import type { RubricRecord } from '../../src/data/schema.js';

// Criteria as the importer writes them: negative items become avoid-criteria with their points kept.
const record: RubricRecord = {
  id: 'hb1', prompt: [{ role: 'user', content: 'q' }], category: 'emergency_referrals',
  criteria: [
    { id: 'c1', text: 'Advises calling emergency services', tier: 'proficiency', points: 8, tags: ['level:example', 'axis:accuracy'] },
    { id: 'c2', text: 'Asks about allergies', tier: 'proficiency', points: 4, tags: ['level:example', 'axis:context_awareness'] },
    { id: 'c3', text: 'Avoid: recommends waiting', tier: 'safety', points: -6, tags: ['level:example', 'axis:accuracy'] },
    { id: 'c4', text: 'Avoid: is verbose', tier: 'proficiency', points: -2, tags: ['level:example', 'axis:communication_quality'] },
  ],
  responses: [],
  source: { format: 'healthbench', example_tags: ['theme:emergency_referrals', 'physician_agreed_category:emergent'] },
};

test('example score: met points over positive points, negatives subtract, tags scored on their own items', () => {
  // c1 met (+8), c2 not, c3's avoid-criterion failed -> "recommends waiting" happened (-6), c4 avoided (0).
  const e = healthbenchExample(record, { c1: true, c2: false, c3: false, c4: true })!;
  assert.is(e.score, (8 - 6) / 12);
  assert.is(e.tags['theme:emergency_referrals'], e.score);
  assert.is(e.tags['physician_agreed_category:emergent'], e.score);
  assert.is(e.tags['axis:accuracy'], (8 - 6) / 8);
  assert.is(e.tags['axis:context_awareness'], 0);
  assert.ok(!('axis:communication_quality' in e.tags), 'a tag with no positive points is dropped');
  assert.is(e.tags['level:example'], e.score);
  // Grades in [0, 1] count as met at >= 0.5; ungraded criteria are left out.
  assert.is(healthbenchExample(record, { c1: 0.9, c3: 0.2 })!.score, (8 - 6) / 8);
  assert.is(healthbenchExample(record, { c3: true }), null, 'no positive points graded');
  // Without the original tags the record's theme stands in.
  const bare = { ...record, source: undefined };
  assert.equal(Object.keys(healthbenchExample(bare, { c1: true })!.tags).filter((t) => t.startsWith('theme:')), ['theme:emergency_referrals']);
});

test('reported score: clip(mean, 0, 1); bootstrap std of the clipped mean; seeded', () => {
  assert.equal(healthbenchStat([-0.5, -0.1]), { score: 0, std: 0, n: 2 }, 'all negative: clipped to 0, every resample too');
  assert.is(healthbenchStat([1.2, 0.4]).score, 0.8);
  // Two values {0, 1}: a resample's mean is 0, 0.5, 1 with probability 1/4, 1/2, 1/4 -> std sqrt(1/8).
  const s = healthbenchStat([0, 1], { seed: 7 });
  assert.ok(Math.abs(s.std - Math.sqrt(1 / 8)) < 0.02, `std ${s.std}`);
  assert.equal(s, healthbenchStat([0, 1], { seed: 7 }));
  // Clipping inside the resamples: {0, 2} resamples to 0, 1 (clipped), 1 (clipped): std sqrt(3/16).
  assert.ok(Math.abs(healthbenchStat([0, 2], { seed: 1 }).std - Math.sqrt(3 / 16)) < 0.02);
  assert.ok(Number.isNaN(healthbenchStat([]).score));
  const report = healthbenchReport([healthbenchExample(record, { c1: true, c2: true, c3: true, c4: true })!, healthbenchExample(record, { c1: false, c2: false, c3: false, c4: false })!]);
  // Scores 1 and (-6 - 2) / 12: the mean is 1/6 (not clipped), accuracy axis (1 + -6/8) / 2.
  assert.ok(Math.abs(report.overall.score - (1 - 8 / 12) / 2) < 1e-12);
  assert.ok(Math.abs(report.byTag['axis:accuracy'].score - (1 - 6 / 8) / 2) < 1e-12);
  assert.is(report.byTag['theme:emergency_referrals'].n, 2);
});

const real = new URL('../../../shared/data/real/healthbench', import.meta.url).pathname;
test('real HealthBench records: all-met grades score exactly 1, with theme and axis tags', async () => {
  if (!fs.existsSync(real)) {
    console.log(`  skipped: ${real} is absent (the real-data slice is only on developer machines)`);
    return;
  }
  const file = path.join(real, 'hotake-varytex__sample_2025-05-07-06-14-12_oss_eval.shared.jsonl');
  const records = await loadRecords(file, { format: 'healthbench' });
  // All-met grades: every positive item met and every avoid-criterion met (nothing bad happened) -> 1.
  for (const r of records) {
    const e = healthbenchExample(r, Object.fromEntries(r.criteria.map((c) => [c.id, true])));
    assert.ok(e !== null && Math.abs(e.score - 1) < 1e-12, `${r.id}: ${e?.score}`);
    assert.ok(Object.keys(e!.tags).some((t) => t.startsWith('theme:')) && Object.keys(e!.tags).some((t) => t.startsWith('axis:')));
  }
});

test.run();
