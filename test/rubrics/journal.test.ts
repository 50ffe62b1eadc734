// The review journal: one fsynced JSON line per entry, numbered in order; a torn last line (a
// crash mid-write) is ignored and cut before the next write; any other bad line is an error; one
// writing process at a time; the fold keeps the latest entry per (reviewer, item, criterion) and
// never mixes reviewers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { foldJournal, Journal, readJournal, type NewEntry } from '../../src/rubrics/journal.js';
import { tmpDir } from './review_helpers.js';

const dir = tmpDir('journal');
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => path.join(dir, `j${n++}.jsonl`);

const accept = (reviewer: string, criterion: string, item = 'q0'): NewEntry => ({ type: 'decision', reviewer, round: 0, item, criterion, action: 'accept' });

test('entries are lines numbered 1, 2, 3 with a uuid and a time; a reopened journal goes on counting', () => {
  const file = fresh();
  const j = new Journal(file);
  const a = j.append(accept('dr-a', 'p1'));
  const b = j.append({ type: 'grade', reviewer: 'dr-a', round: 0, item: 'q0', response: 'c0', criterion: 'p1', met: true });
  j.close();
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  assert.is(lines.length, 3, 'two lines, each ending in a newline');
  assert.is(lines[2], '');
  assert.equal(JSON.parse(lines[0]), a);
  assert.equal([a.seq, b.seq], [1, 2]);
  assert.match(a.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.is.not(a.uuid, b.uuid);
  assert.ok(Math.abs(Date.parse(a.at) - Date.now()) < 60_000, a.at);
  const again = new Journal(file);
  assert.is(again.count, 2);
  assert.is(again.append(accept('dr-b', 'p1')).seq, 3);
  again.close();
  assert.equal(readJournal(file).map((e) => e.seq), [1, 2, 3]);
});

test('a torn last line is ignored when reading and cut off before the next entry', () => {
  const file = fresh();
  const j = new Journal(file);
  j.append(accept('dr-a', 'p1'));
  j.append(accept('dr-a', 'p2'));
  j.close();
  fs.appendFileSync(file, '{"seq":3,"uuid":"x","type":"deci'); // what a kill mid-write leaves
  assert.equal(readJournal(file).map((e) => e.seq), [1, 2]);
  const again = new Journal(file);
  again.append(accept('dr-a', 's1'));
  again.close();
  const entries = readJournal(file);
  assert.equal(entries.map((e) => [e.seq, (e as { criterion: string }).criterion]), [[1, 'p1'], [2, 'p2'], [3, 's1']]);
  assert.not.match(fs.readFileSync(file, 'utf8'), /deci\{|"x"/);
});

test('a bad line that is not the last is an error naming the line; no file is an empty journal', () => {
  const file = fresh();
  fs.writeFileSync(file, `${JSON.stringify({ seq: 1 })}\nnot json\n${JSON.stringify({ seq: 2 })}\n`);
  assert.throws(() => readJournal(file), (e: Error) => e.message.startsWith(`${file}:2: not a journal entry`));
  assert.equal(readJournal(path.join(dir, 'none.jsonl')), []);
});

test('a failed write throws and counts nothing', () => {
  const file = fresh();
  const j = new Journal(file);
  j.append(accept('dr-a', 'p1'));
  j.close(); // the descriptor is gone: the next write fails as a full disk would
  assert.throws(() => j.append(accept('dr-a', 'p2')), /EBADF|bad file descriptor/i);
  assert.is(j.count, 1);
  assert.is(readJournal(file).length, 1);
});

test('one writer per journal: a live process holding its lock is refused, a dead one\'s lock is taken over', () => {
  const file = fresh();
  fs.writeFileSync(`${file}.lock`, String(process.ppid)); // the parent of this test: alive
  assert.throws(() => new Journal(file), new RegExp(`open in another process \\(pid ${process.ppid}\\): one review server per work folder`));
  const dead = spawnSync(process.execPath, ['-e', '']).pid!;
  fs.writeFileSync(`${file}.lock`, String(dead));
  const j = new Journal(file);
  assert.is(fs.readFileSync(`${file}.lock`, 'utf8'), String(process.pid));
  j.close();
  assert.not.ok(fs.existsSync(`${file}.lock`), 'closing releases it');
});

test('fold: latest decision per (reviewer, item, criterion) and grade per (response, criterion) win; reviewers stay apart', () => {
  const file = fresh();
  const j = new Journal(file);
  j.append(accept('dr-a', 'p1'));
  j.append({ type: 'decision', reviewer: 'dr-b', round: 0, item: 'q0', criterion: 'p1', action: 'reject' });
  j.append({ type: 'decision', reviewer: 'dr-a', round: 0, item: 'q0', criterion: 'p1', action: 'edit', edit: { text: 'Says to call 911', tier: 'safety' } });
  j.append(accept('dr-a', 'p2'));
  j.append(accept('dr-a', 'p1', 'q1'));
  j.append({ type: 'grade', reviewer: 'dr-a', round: 0, item: 'q0', response: 'c0', criterion: 'p1', met: true });
  j.append({ type: 'grade', reviewer: 'dr-a', round: 0, item: 'q0', response: 'c0', criterion: 'p1', met: false });
  j.append({ type: 'grade', reviewer: 'dr-a', round: 0, item: 'q0', response: 'c1', criterion: 'p1', met: true });
  j.append({ type: 'item-done', reviewer: 'dr-a', round: 0, item: 'q0', seconds: 30 });
  j.append({ type: 'item-done', reviewer: 'dr-a', round: 0, item: 'q0', seconds: 12 });
  j.close();
  const f = foldJournal(readJournal(file));
  assert.equal([...f.keys()].sort(), ['dr-a', 'dr-b']);
  const a = f.get('dr-a')!.get('q0')!;
  assert.is(a.decisions.get('p1')!.action, 'edit');
  assert.equal(a.decisions.get('p1')!.edit, { text: 'Says to call 911', tier: 'safety' });
  assert.is(a.decisions.get('p2')!.action, 'accept');
  assert.is(a.grades.get('c0')!.get('p1')!.met, false);
  assert.is(a.grades.get('c1')!.get('p1')!.met, true);
  assert.equal(a.done.map((e) => e.seconds), [30, 12]);
  assert.is(f.get('dr-b')!.get('q0')!.decisions.get('p1')!.action, 'reject', "dr-a's later edit does not touch dr-b's reject");
  assert.is(f.get('dr-a')!.get('q1')!.decisions.size, 1);
  assert.is(f.get('dr-b')!.get('q0')!.done.length, 0);
});

test.run();
