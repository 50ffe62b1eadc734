// The bench report and `npm run eval-bench` on provided grades: two systems (the records' own
// responses) side by side, the paired difference, the Markdown tables, the charts and the JSON line.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { verdict } from '../../src/eval/report.js';

const root = new URL('../..', import.meta.url).pathname;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-report-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('verdict reads the paired interval', () => {
  assert.is(verdict({ mean: 0.1, low: 0.02, high: 0.2, std: 0.05 }), 'higher (interval above 0)');
  assert.is(verdict({ mean: -0.1, low: -0.2, high: -0.01, std: 0.05 }), 'lower (interval below 0)');
  assert.is(verdict({ mean: 0.05, low: -0.02, high: 0.1, std: 0.05 }), 'no clear difference (interval spans 0)');
  assert.is(verdict({ mean: 0, low: 0, high: 0, std: 0 }), 'no difference (equal on every prompt)');
});

test('eval-bench with provided grades: report, charts and summary line agree with hand-computed means', () => {
  // Three records; response "good" meets everything, "bad" misses one proficiency criterion of
  // each and violates safety on the first record only.
  const records = [0, 1, 2].map((i) => ({
    id: `r${i}`, prompt: [{ role: 'user', content: `question ${i}` }], category: 'triage', specialty: i < 2 ? 'cardiology' : 'neurology',
    criteria: [
      { id: 'p1', text: 'a', tier: 'proficiency', weight: 0.5 }, { id: 'p2', text: 'b', tier: 'proficiency', weight: 0.5 },
      { id: 'e1', text: 'c', tier: 'excellence' }, { id: 's1', text: 'd', tier: 'safety' },
    ],
    responses: [
      { id: 'good', text: 'G', grades: { p1: true, p2: true, e1: true, s1: true } },
      { id: 'bad', text: 'B', grades: { p1: true, p2: false, e1: false, s1: i !== 0 } },
    ],
  }));
  const data = path.join(tmp, 'records.jsonl');
  fs.writeFileSync(data, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const out = path.join(tmp, 'bench');
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'examples/eval-bench.ts', '--data', data, '--policy', 'response:good', '--baseline', 'response:bad', '--grader', 'grades', '--no-judge', '--out', out], {
    cwd: root, encoding: 'utf8', env: { ...process.env, PROMEDICAL_BACKEND: 'cpu' },
  });
  assert.is(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.is(summary.run_dir, out);
  assert.equal([summary.overall_accuracy, summary.safety_compliance, summary.s1, summary.s2, summary.s3], [1, 1, 1, 1, 0]);
  // bad: accuracy (1/4, 2/4, 2/4) -> 5/12; safe on 2 of 3; S1 0.5 everywhere.
  assert.ok(Math.abs(summary.baseline.overall_accuracy - 5 / 12) < 1e-12);
  assert.ok(Math.abs(summary.baseline.safety_compliance - 2 / 3) < 1e-12);
  assert.ok(Math.abs(summary.difference.overall_accuracy.mean - 7 / 12) < 1e-12);
  assert.ok(summary.difference.overall_accuracy.low > 0, 'good is better on every prompt');
  const md = fs.readFileSync(summary.report, 'utf8');
  assert.match(md, /\| overall criterion accuracy \| 1\.000 \[1\.000, 1\.000\] \| 0\.417 \[/);
  assert.match(md, /\| cardiology \| 2 \|/);
  assert.match(md, /\| neurology \| 1 \|/);
  for (const chart of summary.charts) assert.match(fs.readFileSync(chart, 'utf8'), /^<svg[\s\S]*<\/svg>$/);
  assert.is(fs.readFileSync(path.join(out, 'responses.jsonl'), 'utf8').trim().split('\n').length, 6);
});

test('eval-bench refuses provided grades for a generated policy, naming the flag', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'examples/eval-bench.ts', '--policy', 'response:good', '--baseline', 'weights/none', '--grader', 'grades'], { cwd: root, encoding: 'utf8' });
  assert.is.not(r.status, 0);
  assert.match(r.stderr, /weights\/none is not a Qwen3 folder/);
});

test.run();
