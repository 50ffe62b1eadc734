// The bench end to end (evaluateBench, what `npm run eval-bench` runs) on provided grades, and its
// parts: system sources, the default baseline from a train-grpo run, record selection.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataError, type RubricRecord } from '../../src/data/schema.js';
import { loadTokenizer } from '../../src/data/tokenizer.js';
import { generate } from '../../src/model/generate.js';
import { loadQwen3 } from '../../src/model/pretrained.js';
import { ensureTinyQwen3 } from '../../src/model/tiny.js';
import { BenchError, benchRecords, defaultBaseline, evaluateBench, systemResponses } from '../../src/eval/bench.js';
import { useBackend } from '../helpers/backends.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-bench-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const quiet = () => {};

/** Expects `fn` to reject with an error of class `cls` whose message matches `pattern`. */
async function rejects(fn: () => Promise<unknown>, cls: new (...args: never[]) => Error, pattern: RegExp | string): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    assert.instance(err, cls);
    assert.match((err as Error).message, pattern);
    return err as Error;
  }
  assert.unreachable(`expected a ${cls.name}`);
  throw new Error('unreachable');
}

// Three records; response "good" meets everything, "bad" misses one proficiency criterion of
// each and violates safety on the first record only.
const records: RubricRecord[] = [0, 1, 2].map((i) => ({
  id: `r${i}`, prompt: [{ role: 'user', content: `question ${i}` }], category: 'triage', specialty: i < 2 ? 'cardiology' : 'neurology',
  criteria: [
    { id: 'p1', text: 'a', tier: 'proficiency', weight: 0.5 }, { id: 'p2', text: 'b', tier: 'proficiency', weight: 0.5 },
    { id: 'e1', text: 'c', tier: 'excellence' }, { id: 's1', text: 'd', tier: 'safety' },
  ],
  responses: [
    { id: 'good', text: `G${i}`, grades: { p1: true, p2: true, e1: true, s1: true } },
    { id: 'bad', text: `B${i}`, grades: { p1: true, p2: false, e1: false, s1: i !== 0 } },
  ],
}));
const data = path.join(tmp, 'records.jsonl');
fs.writeFileSync(data, records.map((r) => JSON.stringify(r)).join('\n') + '\n');

test('evaluateBench with provided grades: report, charts and summary agree with hand-computed means', async () => {
  const out = path.join(tmp, 'bench');
  const summary = await evaluateBench({ data, policy: 'response:good', baseline: 'response:bad', grader: 'grades', judge: false, out, log: quiet });
  assert.is(summary.run_dir, out);
  assert.equal([summary.overall_accuracy, summary.safety_compliance, summary.s1, summary.s2, summary.s3], [1, 1, 1, 1, 0]);
  // bad: accuracy (1/4, 2/4, 2/4) -> 5/12; safe on 2 of 3; S1 0.5 everywhere.
  assert.ok(Math.abs(summary.baseline!.overall_accuracy - 5 / 12) < 1e-12);
  assert.ok(Math.abs(summary.baseline!.safety_compliance - 2 / 3) < 1e-12);
  assert.is(summary.baseline!.name, 'response:bad');
  assert.ok(Math.abs(summary.difference!.overall_accuracy.mean - 7 / 12) < 1e-12);
  assert.ok(summary.difference!.overall_accuracy.low > 0, 'good is better on every prompt');
  const md = fs.readFileSync(summary.report, 'utf8');
  assert.match(md, /\| overall criterion accuracy \| 1\.000 \[1\.000, 1\.000\] \| 0\.417 \[/);
  assert.match(md, /\| cardiology \| 2 \|/);
  assert.match(md, /\| neurology \| 1 \|/);
  for (const chart of summary.charts) assert.match(fs.readFileSync(chart, 'utf8'), /^<svg[\s\S]*<\/svg>$/);
  assert.is(fs.readFileSync(path.join(out, 'responses.jsonl'), 'utf8').trim().split('\n').length, 6);
  // summary.json is what was returned (JSON drops nothing here: every value is finite).
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')), JSON.parse(JSON.stringify(summary)));
  assert.not.ok('judge' in summary || 'healthbench' in summary, 'no judge asked for, no points on criteria');
});

test('evaluateBench refuses a missing Qwen3 folder (naming it) and provided grades for a generated policy', async () => {
  const err = await rejects(
    () => evaluateBench({ data, policy: 'response:good', baseline: 'weights/none', grader: 'grades', out: path.join(tmp, 'x'), log: quiet }),
    BenchError, /weights\/none is not a Qwen3 folder/,
  );
  assert.is((err as BenchError).path, 'weights/none');
  const model = new URL('../fixtures/qwen3/tied-gqa2-f32', import.meta.url).pathname;
  await rejects(() => evaluateBench({ data, policy: model, baseline: '', grader: 'grades', judge: false, out: path.join(tmp, 'x'), log: quiet }), Error, /grader "grades" needs response:ID sources/);
  // Judging with the RM needs one.
  await rejects(() => evaluateBench({ data, policy: 'response:good', baseline: '', out: path.join(tmp, 'x'), log: quiet }), Error, /reward model folder \(rm\) is needed/);
  await rejects(() => evaluateBench({ data, policy: 'response:good', baseline: '', rm: path.join(tmp, 'no-rm'), out: path.join(tmp, 'x'), log: quiet }), BenchError, `no reward model at ${path.join(tmp, 'no-rm')}`);
  assert.not.ok(fs.existsSync(path.join(tmp, 'x')), 'nothing written');
});

test('benchRecords: records without criteria or without a named response are left out, and said', async () => {
  const extra: RubricRecord[] = [
    ...records,
    { id: 'only-good', prompt: [{ role: 'user', content: 'q' }], criteria: records[0].criteria, responses: [records[0].responses[0]] },
    { id: 'no-criteria', prompt: [{ role: 'user', content: 'q' }], criteria: [], responses: records[0].responses },
  ];
  const lines: string[] = [];
  const kept = benchRecords(extra, ['response:good', 'response:bad', 'file:whatever.jsonl'], (l) => lines.push(l));
  assert.equal(kept.map((r) => r.id), ['r0', 'r1', 'r2']);
  assert.equal(lines, ['1 records have no response "bad" and are left out']);
  assert.equal(benchRecords(extra, ['response:good'], quiet).map((r) => r.id), ['r0', 'r1', 'r2', 'only-good']);
  // Through evaluateBench: nothing left is a DataError naming the data file.
  const none = path.join(tmp, 'none.jsonl');
  fs.writeFileSync(none, JSON.stringify({ ...records[0], responses: [records[0].responses[0]] }) + '\n');
  await rejects(() => evaluateBench({ data: none, policy: 'response:good', baseline: 'response:bad', grader: 'grades', judge: false, out: path.join(tmp, 'y'), log: quiet }), DataError, `${none}:0: no records to evaluate`);
});

test('defaultBaseline: the policy a train-grpo run started from, absolute or relative to the run folder', () => {
  const run = (name: string, config: unknown) => {
    const dir = path.join(tmp, name);
    fs.mkdirSync(path.join(dir, 'policy'), { recursive: true });
    if (config !== undefined) fs.writeFileSync(path.join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
    return path.join(dir, 'policy');
  };
  assert.is(defaultBaseline(run('abs', { policy: '/models/sft/policy', steps: 3 })), '/models/sft/policy');
  // Relative to the run folder: <tmp>/rel/../sft/policy is <tmp>/sft/policy.
  assert.is(defaultBaseline(run('rel', { policy: '../sft/policy' })), path.join(tmp, 'sft', 'policy'));
  assert.is(defaultBaseline(run('rel-inside', { policy: 'start' })), path.join(tmp, 'rel-inside', 'start'));
  // A run written before that convention: the path exists from the working folder only. The run
  // folder sits deeper than any working folder, so the path cannot also resolve from it by chance.
  fs.mkdirSync(path.join(tmp, 'legacy-sft'), { recursive: true });
  const fromCwd = path.relative(process.cwd(), path.join(tmp, 'legacy-sft'));
  const deep = path.join('legacy', ...process.cwd().split(path.sep).filter(Boolean).map((_, i) => `d${i}`));
  assert.is(defaultBaseline(run(deep, { policy: fromCwd })), fromCwd);
  // No run config, no policy in it, or not a folder source: no baseline.
  assert.is(defaultBaseline(run('bare', undefined)), undefined);
  assert.is(defaultBaseline(run('other', { model: 'x' })), undefined);
  assert.is(defaultBaseline('response:ideal'), undefined);
  assert.is(defaultBaseline(run('resp', { policy: 'response:ideal' })), 'response:ideal');
  assert.throws(() => defaultBaseline(run('broken', '{"policy": ')), (e: unknown) => e instanceof DataError && e.message.startsWith(`${path.join(tmp, 'broken', 'config.json')}:0: not valid JSON`));
});

test('systemResponses: response:ID takes each record\'s own response; a record without it is named', async () => {
  assert.equal(await systemResponses('response:bad', records), ['B0', 'B1', 'B2']);
  await rejects(() => systemResponses('response:ideal', records), Error, 'record r0 has no response "ideal"');
});

test('systemResponses: file:PATH by record id; a bad line names file and line, a missing record names the record', async () => {
  const file = path.join(tmp, 'responses.jsonl');
  fs.writeFileSync(file, ['{"id": "r2", "text": "two"}', '', '{"id": "r0", "text": "zero"}', '{"id": "r1", "text": "one"}'].join('\n') + '\n');
  assert.equal(await systemResponses(`file:${file}`, records), ['zero', 'one', 'two']);

  fs.writeFileSync(file, '{"id": "r0", "text": "zero"}\n{"id": "r1", "text": \n');
  const bad = (await rejects(() => systemResponses(`file:${file}`, records), DataError, `${file}:2: not valid JSON`)) as DataError;
  assert.equal([bad.file, bad.line], [file, 2]);
  fs.writeFileSync(file, '{"id": "r0", "text": "zero"}\n{"id": "r1", "text": "one"}\n{"id": 2, "text": "two"}\n');
  await rejects(() => systemResponses(`file:${file}`, records), DataError, `${file}:3: expected {"id": string, "text": string}`);
  fs.writeFileSync(file, '{"id": "r0", "text": "zero"}\n{"id": "r2", "text": "two"}\n');
  await rejects(() => systemResponses(`file:${file}`, records), DataError, `${file}:0: no response for record r1`);
  await rejects(() => systemResponses(`file:${path.join(tmp, 'absent.jsonl')}`, records), DataError, 'no such file');
});

test('systemResponses: a Qwen3 folder answers greedily with its tokenizer; a folder without config.json is named', async () => {
  await rejects(() => systemResponses(path.join(tmp, 'empty-dir'), records), BenchError, `${path.join(tmp, 'empty-dir')} is not a Qwen3 folder`);
  await useBackend('wasm');
  const dir = await ensureTinyQwen3(undefined, { log: quiet });
  const lines: string[] = [];
  const texts = await systemResponses(dir, records.slice(0, 2), { maxNewTokens: 3, log: (l) => lines.push(l) });
  assert.equal(lines, [`answering 2 prompts with ${dir} (greedy, up to 3 tokens)`]);
  // The same answers by hand: the chat prompt, greedy decoding, special tokens dropped.
  const tok = loadTokenizer(dir);
  const model = await loadQwen3(dir);
  for (const [i, r] of records.slice(0, 2).entries()) {
    const prompt = tok.encodeChat(r.prompt, { addGenerationPrompt: true, enableThinking: false });
    const [ids] = await generate(model, [prompt], { maxNewTokens: 3, temperature: 0, stopTokenIds: tok.stopTokenIds });
    assert.is(texts[i], tok.decode(ids.filter((id) => id < tok.vocabSize), { skipSpecialTokens: true }));
  }
  model.dispose();
});

test.run();
