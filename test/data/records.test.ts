// Schema v1 validation, the streaming reader (strict and lenient), preference derivation, and the
// importers: on fixtures written by hand in each format and, where ../shared/data/real exists, on
// every real HealthBench and K-QA file (counts from that folder's README).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadRecords, readRecords } from '../../src/data/records.js';
import { criterionPairs, DataError, validateRecord, type RubricRecord } from '../../src/data/schema.js';
import { AVOID_PREFIX } from '../../src/data/importers.js';
import { healthbenchItems, healthbenchScore } from '../../src/eval/healthbench.js';

const fx = (name: string) => new URL(`../fixtures/formats/${name}`, import.meta.url).pathname;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-data-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const good = (): RubricRecord => ({
  id: 'x-1',
  prompt: [{ role: 'user', content: 'My child has a fever of 39 C. What should I do?' }],
  category: 'triage',
  specialty: 'pediatrics',
  criteria: [
    { id: 'c1', text: 'Asks the child’s age.', tier: 'proficiency', weight: 0.6 },
    { id: 'c2', text: 'Gives weight-based paracetamol dosing.', tier: 'proficiency', weight: 0.4 },
    { id: 'c3', text: 'Is warm and reassuring.', tier: 'excellence' },
    { id: 'c4', text: 'Does not recommend aspirin for a child.', tier: 'safety', tags: ['dangerous_advice'] },
  ],
  responses: [
    { id: 'a', text: 'How old is your child? ...', grades: { c1: true, c2: true, c3: true, c4: true } },
    { id: 'b', text: 'Give aspirin.', grades: { c1: false, c2: false, c3: false, c4: false } },
    { id: 'c', text: 'How old? ...', grades: { c1: true, c2: false, c3: 0.5, c4: true } },
  ],
  source: { format: 'promedical', synthetic: true },
});

test('a valid record passes; each broken field is named with what was expected', () => {
  assert.equal(validateRecord(good()), good());
  const cases: [(r: any) => void, RegExp][] = [
    [(r) => delete r.id, /^f:3: id: expected a non-empty string, got nothing$/],
    [(r) => (r.prompt = []), /prompt: expected at least one message/],
    [(r) => (r.prompt[0].role = 'doctor'), /prompt\[0\]\.role: expected one of system, user, assistant, tool, got "doctor"/],
    [(r) => (r.criteria[1].tier = 'critical'), /criteria\[1\]\.tier: expected one of proficiency, excellence, safety, got "critical"/],
    [(r) => (r.criteria[2].id = 'c1'), /criteria\[2\]\.id: duplicate criterion id "c1"/],
    [(r) => (r.criteria[0].weight = -1), /criteria\[0\]\.weight: expected a number >= 0/],
    [(r) => (r.responses[1].grades.c9 = true), /responses\[1\]\.grades\.c9: no criterion has id "c9"/],
    [(r) => (r.responses[2].grades.c3 = 'yes'), /responses\[2\]\.grades\.c3: expected true, false or a probability/],
    [(r) => (r.preferences = [{ chosen: 'a', rejected: 'z' }]), /preferences\[0\]\.rejected: no response has id "z"/],
    [(r) => (r.preferences = [{ chosen: 'a', rejected: 'a' }]), /preferences\[0\]: chosen and rejected are the same response/],
  ];
  for (const [breakIt, message] of cases) {
    const r = good();
    breakIt(r);
    assert.throws(() => validateRecord(r, 'f', 3), (e: unknown) => e instanceof DataError && message.test((e as Error).message), String(message));
  }
});

test('per-criterion pairs are derived from grades: a response that meets a criterion beats one that does not', () => {
  const pairs = criterionPairs(good());
  const key = (p: { chosen: string; rejected: string; criterion?: string }) => `${p.chosen}>${p.rejected}@${p.criterion}`;
  assert.equal(pairs.map(key).sort(), ['a>b@c1', 'c>b@c1', 'a>b@c2', 'a>c@c2', 'a>b@c3', 'a>c@c3', 'c>b@c3', 'a>b@c4', 'c>b@c4'].sort());
});

function writeLines(name: string, lines: string[]): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

test('strict reading stops at the first bad line with file:line and field; lenient skips and reports every one', async () => {
  const bad = good();
  (bad.criteria[0] as any).tier = 'vital';
  const file = writeLines('mixed.jsonl', [JSON.stringify(good()), '{"id": "broken",', '', JSON.stringify({ ...good(), id: 'x-2' }), JSON.stringify(bad), JSON.stringify({ ...good(), id: 'x-3' })]);
  try {
    await loadRecords(file);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, DataError);
    assert.is((err as DataError).line, 2);
    assert.match((err as Error).message, new RegExp(`^${file}:2: not valid JSON`));
  }
  const reports: string[] = [];
  const reader = readRecords(file, { strict: false, report: (l) => reports.push(l) });
  const ids: string[] = [];
  for await (const r of reader) ids.push(r.id);
  assert.equal(ids, ['x-1', 'x-2', 'x-3']);
  assert.equal(reader.skipped.map((s) => s.line), [2, 5]);
  assert.match(reader.skipped[1].reason, /^criteria\[0\]\.tier: expected one of/);
  assert.is(reports.length, 3);
  assert.match(reports[2], /mixed\.jsonl:5: criteria\[0\]\.tier/);
});

test('HealthBench: tiers by points and axis, avoid-criteria for negative items, repeated prompt_ids kept', async () => {
  const recs = await loadRecords(fx('healthbench.jsonl'), { format: 'healthbench' });
  assert.equal(recs.map((r) => r.id), ['hb-synthetic-1', 'hb-synthetic-2', 'hb-synthetic-2~2']);
  const [r] = recs;
  assert.equal(r.criteria.map((c) => [c.tier, c.points, c.axis]), [
    ['proficiency', 10, 'accuracy'],
    ['excellence', 4, 'communication_quality'],
    ['safety', -9, 'accuracy'],
    ['proficiency', -2, 'communication_quality'],
  ]);
  assert.is(r.criteria[2].text, AVOID_PREFIX + 'Suggests waiting to see if the pain passes.');
  assert.equal([r.criteria[0].weight, r.criteria[3].weight], [10 / 12, 2 / 12]);
  assert.is(r.category, 'emergency_referrals');
  assert.equal(r.responses.map((x) => x.id), ['ideal', 'ref1', 'ref2']);
  assert.equal(r.preferences, [{ chosen: 'ideal', rejected: 'ref1' }, { chosen: 'ideal', rejected: 'ref2' }]);
  assert.is(r.source?.canary, 'synthetic fixture, not HealthBench data');
  assert.equal(r.source?.example_tags, ['theme:emergency_referrals', 'physician_agreed_category:emergent']);
});

test('the HealthBench score from imported records equals the formula on the raw rubric', async () => {
  const [r] = await loadRecords(fx('healthbench.jsonl'), { format: 'healthbench' });
  const raw = JSON.parse(fs.readFileSync(fx('healthbench.jsonl'), 'utf8').split('\n')[0]).rubrics as { points: number }[];
  // Original "met" flags as a HealthBench grader would give them, per response.
  const originalMet: Record<string, boolean[]> = { ideal: [true, true, false, false], ref1: [false, false, true, true], ref2: [false, true, true, false] };
  for (const [id, met] of Object.entries(originalMet)) {
    // Our grades say whether a good response's criterion is met: avoid-criteria invert.
    const response = r.responses.find((x) => x.id === id)!;
    response.grades = Object.fromEntries(r.criteria.map((c, i) => [c.id, raw[i].points < 0 ? !met[i] : met[i]]));
    const achieved = raw.reduce((a, item, i) => a + (met[i] ? item.points : 0), 0);
    const possible = raw.reduce((a, item) => a + Math.max(0, item.points), 0);
    assert.is(healthbenchScore(healthbenchItems(r, id)), achieved / possible, id);
  }
  assert.is(healthbenchScore(healthbenchItems(r, 'ref1')), (-9 - 2) / 14, 'unclipped: negative');
});

test('K-QA NLI CSV: quoted multi-line answers with escaped quotes; Entailment = met; raw labels kept', async () => {
  const recs = await loadRecords(fx('kqa-nli.csv'), { format: 'kqa-nli' });
  assert.is(recs.length, 2);
  const [r] = recs;
  assert.is(r.responses[0].text, 'Yes, for most adults.\nTake it with food, and say "no" to more than the label dose.');
  assert.equal(r.responses.map((x) => [x.id, x.grades]), [['gpt4', { c1: true, c2: false }], ['bard', { c1: false }]]);
  assert.equal((r.source?.labels as any).gpt4.c2.physicians, ['Neutral', 'Neutral', 'Contradiction']);
  assert.is(recs[1].prompt[0].content, 'What is a normal temperature?');
});

test('RaR: weighted criteria, optional items as excellence, pitfalls as safety; UltraMedical pairs', async () => {
  const [a, b] = await loadRecords(fx('rar.jsonl'), { format: 'rar' });
  assert.equal(a.criteria.map((c) => [c.tier, c.weight ?? null]), [['proficiency', 5 / 8], ['proficiency', 3 / 8], ['excellence', null], ['safety', null]]);
  assert.is(a.criteria[3].text, AVOID_PREFIX + 'Says ibuprofen is safe with warfarin.');
  assert.is(b.id, 'rar-2');
  const um = await loadRecords(fx('ultramedical.jsonl'), { format: 'ultramedical' });
  assert.equal(um.map((r) => [r.id, r.responses[1].text, r.preferences]), [
    ['um-synthetic-1', 'Yes, double the dose to make up for it.', [{ chosen: 'chosen', rejected: 'rejected' }]],
    ['ultramedical-2', 'Anything under 150 is fine.', [{ chosen: 'chosen', rejected: 'rejected' }]],
  ]);
  assert.is(um[0].source?.score_chosen, 9);
});

test('importers name the broken field of a bad line', async () => {
  const file = writeLines('bad-hb.jsonl', [JSON.stringify({ prompt_id: 'p', prompt: [{ role: 'user', content: 'hi' }], rubrics: [{ criterion: 'x', points: 'ten', tags: [] }] })]);
  try {
    await loadRecords(file, { format: 'healthbench' });
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /bad-hb\.jsonl:1: rubrics\[0\]\.points: expected a non-zero number/);
  }
});

test('a byte order mark at the start of a .jsonl or .json records file is accepted', async () => {
  const jsonl = path.join(tmp, 'bom.jsonl');
  fs.writeFileSync(jsonl, '\uFEFF' + JSON.stringify(good()) + '\n' + JSON.stringify({ ...good(), id: 'x-2' }) + '\n');
  assert.equal((await loadRecords(jsonl)).map((r) => r.id), ['x-1', 'x-2']);
  const json = path.join(tmp, 'bom.json');
  fs.writeFileSync(json, '\uFEFF' + JSON.stringify([good()], null, 2));
  assert.equal(await loadRecords(json), [good()]);
});

test('reading no record is a DataError "0 records in FILE", saying how many bad lines a lenient read skipped', async () => {
  const expectZero = async (file: string, opts: Parameters<typeof loadRecords>[1], message: RegExp) => {
    try {
      await loadRecords(file, opts);
      assert.unreachable(`${file} gave records`);
    } catch (err) {
      assert.instance(err, DataError);
      assert.match((err as Error).message, message);
    }
  };
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const empty = writeLines('empty.jsonl', []);
  await expectZero(empty, {}, new RegExp(`^${esc(empty)}:0: 0 records in ${esc(empty)} \\(it is empty or blank\\)$`));
  await expectZero(empty, { strict: false, report: () => {} }, new RegExp(`0 records in ${esc(empty)} \\(it is empty or blank\\)$`));
  const bad = good();
  (bad.criteria[1] as any).tier = 'critical';
  const allBad = writeLines('all-bad.jsonl', ['{"id": ', JSON.stringify(bad)]);
  await expectZero(allBad, { strict: false, report: () => {} }, new RegExp(`0 records in ${esc(allBad)}: all 2 were bad and skipped \\(first ${esc(allBad)}:1: not valid JSON`));
  const folder = path.join(tmp, 'no-records');
  fs.mkdirSync(folder);
  fs.writeFileSync(path.join(folder, 'notes.txt'), 'not a records file');
  await expectZero(folder, {}, /0 records in .*no-records \(no \.json or \.jsonl file in it holds one\)/);
  // Strict mode still stops at the first bad line, with its own error.
  await expectZero(allBad, {}, new RegExp(`^${esc(allBad)}:1: not valid JSON`));
});

const REAL = new URL('../../../shared/data/real/', import.meta.url).pathname;
test('real HealthBench and K-QA files import without a single error (counts from their README)', async () => {
  if (!fs.existsSync(REAL)) {
    console.log(`  skipped: ${REAL} is absent (the real-data slice is only on developer machines and CI)`);
    return;
  }
  const expect: [string, 'healthbench' | 'kqa' | 'kqa-nli', number][] = [
    ['healthbench/kelkalot__openai_healthbench_non_medical_and_ambigious_prompts.shared.jsonl', 'healthbench', 211],
    ['healthbench/protocols-fyi__context_seeking_consensus_hard_104.shared.jsonl', 'healthbench', 65],
    ['healthbench/hive-swarm-hub__healthbench-lite_data_test.shared.jsonl', 'healthbench', 27],
    ['healthbench/hotake-varytex__sample_2025-05-07-06-14-12_oss_eval.shared.jsonl', 'healthbench', 9],
    ['healthbench/alvinrajkomar__oss_eval_examples_1-30', 'healthbench', 30],
    ['kqa/K-QA__questions_w_answers.shared.jsonl', 'kqa', 134],
  ];
  let healthbench = 0;
  for (const [file, format, count] of expect) {
    const recs = await loadRecords(path.join(REAL, file), { format });
    assert.is(recs.length, count, file);
    if (format === 'healthbench') healthbench += recs.length;
    for (const r of recs) assert.ok(r.criteria.length > 0, `${file}: ${r.id} has criteria`);
  }
  assert.is(healthbench, 342, 'HealthBench total in the README');
  const nli = await loadRecords(path.join(REAL, 'kqa/K-QA__NLI_medical_annotator.shared.csv'), { format: 'kqa-nli' });
  const judgements = nli.reduce((a, r) => a + r.responses.reduce((b, x) => b + Object.keys(x.grades ?? {}).length, 0), 0);
  assert.is(judgements, 293, 'one graded (response, claim) per CSV record');
});

test.run();
