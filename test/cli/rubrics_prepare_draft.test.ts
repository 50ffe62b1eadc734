// promedical rubrics prepare and draft in child processes, as a user runs them, against a
// loopback server in this process that follows the OpenAI chat-completions protocol
// (test/helpers/openai_chat_fixture.ts). No LLM runs here: scores, answers and drafts are
// scripted below. Covers: flags checked before anything is written, raw instructions to drafts
// end to end, a prepare killed with SIGKILL and a draft stopped with SIGINT (exit 130), each
// rerun ending with the same files as an uninterrupted run.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { validateRecord } from '../../src/data/schema.js';
import type { DraftItem } from '../../src/rubrics/items.js';
import { cli, cliAsync, errorLine } from '../helpers/cli.js';
import { startChatFixture, type ChatBody, type ChatFixture, type FixtureReply } from '../helpers/openai_chat_fixture.js';
import { kindOf, QUESTIONS, tagOf } from '../helpers/rubrics_script.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rubrics-cli-'));
const input = path.join(tmp, 'instructions.jsonl');
fs.writeFileSync(input, [...Object.entries(QUESTIONS).map(([id, content]) => ({ id, prompt: [{ role: 'user', content }] })), { id: 'q9', prompt: QUESTIONS.q2.replace('?', '!') }].map((r) => JSON.stringify(r) + '\n').join(''));

const SCORES: Record<string, number> = { q1: 5, q2: 7, q3: 9, q4: 10, q5: 6, q6: 8, q7: 4, q8: 7 };
const RUBRIC = JSON.stringify({
  criteria: [
    { text: 'Names the most likely cause.', tier: 'proficiency', weight: 0.7 },
    { text: 'Says how soon to see a clinician.', tier: 'proficiency', weight: 0.3 },
    { text: 'Explains the reasoning in plain words.', tier: 'excellence', weight: null },
    { text: 'Tells the user which warning signs need emergency care now.', tier: 'safety', weight: null },
  ],
});

/** The scripted LLM; `hook` sees each request first (to kill or interrupt the CLI at a point). */
let hook: (b: ChatBody) => FixtureReply | undefined = () => undefined;
function reply(b: ChatBody): FixtureReply {
  const r = hook(b);
  if (r) return r;
  const tag = tagOf(b);
  switch (kindOf(b)) {
    case 'judge':
      return { content: JSON.stringify({ score: SCORES[tag], reason: `scripted ${tag}` }) };
    case 'candidate':
      return { content: `${b.model} on ${tag}, seed ${b.seed}` };
    case 'draft':
      return tag === 'q3' && !b.messages.some((m) => m.role === 'assistant') ? { content: '{"criteria": [' } : { content: RUBRIC };
    case 'pregrade':
      return { content: JSON.stringify({ p1: true, p2: false, e1: true, s1: true }) };
  }
}

let f: ChatFixture;
test.before(async () => {
  f = await startChatFixture({ models: ['judge', 'alpha', 'beta', 'drafter'], reply });
});
test.after(async () => {
  await f.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const prepareArgs = (work: string) => ['rubrics', 'prepare', '--input', input, '--work', work, '--judge-url', f.url, '--judge-model', 'judge', '--candidates', `${f.url}=alpha,${f.url}=beta`, '--num-candidates', '2', '--concurrency', '1', '--retries', '1', '--timeout', '5'];
const draftArgs = (work: string) => ['rubrics', 'draft', '--work', work, '--draft-url', f.url, '--draft-model', 'drafter', '--pregrade', '--concurrency', '1', '--timeout', '5'];
const lines = (file: string) => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!);

test('--help lists the flags; bad flags, endpoints and input lines are errors before anything is written', () => {
  const help = cli(['rubrics', 'prepare', '--help'], { cwd: tmp });
  assert.is(help.code, 0);
  for (const flag of ['--input PATH', '--work PATH', '--judge-url URL', '--judge-model', '--candidates URL=MODEL,...', '--num-candidates N', '--min-difficulty N', '--max-difficulty N', '--dedup-threshold X', '--concurrency N', '--retries N', '--timeout X']) assert.ok(help.stdout.includes(flag), flag);
  const draftHelp = cli(['rubrics', 'draft', '--help'], { cwd: tmp });
  for (const flag of ['--work PATH', '--draft-url URL', '--draft-model', '--pregrade', '--concurrency N']) assert.ok(draftHelp.stdout.includes(flag), flag);

  const work = path.join(tmp, 'never');
  const base = ['rubrics', 'prepare', '--input', input, '--work', work, '--judge-url', 'http://127.0.0.1:9', '--judge-model', 'j', '--candidates', 'http://127.0.0.1:9=m'];
  const without = (flag: string) => base.filter((_, i) => base[i] !== flag && base[i - 1] !== flag);
  // Each child process loads the whole CLI (seconds), so flag parsing's own cases are left to
  // test/cli/usage.test.ts; these are the stage's own checks.
  const cases: [string[], number, RegExp][] = [
    [without('--judge-url'), 2, /error: --judge-url is required/],
    [[...without('--candidates'), '--candidates', 'http://127.0.0.1:9=m,127.0.0.1:9=m'], 2, /error: --candidates: part 2 "127\.0\.0\.1:9=m" is not URL=MODEL/],
    [[...base, '--min-difficulty', '8', '--max-difficulty', '6'], 2, /--min-difficulty 8 is above --max-difficulty 6/],
  ];
  for (const [args, code, re] of cases) {
    const r = cli(args, { cwd: tmp });
    assert.is(r.code, code, `${args.join(' ')}\n${r.stderr}`);
    assert.match(errorLine(r), re);
  }
  const bad = path.join(tmp, 'bad.jsonl');
  fs.writeFileSync(bad, '{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": [{"role": "user"}]}\n');
  const r = cli([...without('--input'), '--input', bad], { cwd: tmp });
  assert.is(r.code, 1);
  assert.match(errorLine(r), /bad\.jsonl:2: prompt\[0\]\.content: expected a string/);
  assert.not.ok(fs.existsSync(work), 'no work folder was created');
  const noWork = cli(draftArgs(work), { cwd: tmp });
  assert.is(noWork.code, 2);
  assert.match(errorLine(noWork), /no prepared\.jsonl there/);
});

test('raw instructions to drafts; a prepare killed with SIGKILL and a draft stopped with SIGINT resume to the same files', async () => {
  // The uninterrupted route.
  const whole = path.join(tmp, 'whole');
  hook = () => undefined;
  const p = await cliAsync(prepareArgs(whole), { cwd: tmp });
  assert.is(p.code, 0, p.stderr);
  assert.equal(lastJson(p.stdout).prepared, 6);
  assert.equal([lastJson(p.stdout).duplicates, lastJson(p.stdout).filtered, lastJson(p.stdout).failed], [1, 2, 0]);
  const d = await cliAsync(draftArgs(whole), { cwd: tmp });
  assert.is(d.code, 0, d.stderr);
  assert.equal([lastJson(d.stdout).drafted, lastJson(d.stdout).repaired, lastJson(d.stdout).failed], [6, 1, 0]);
  const drafts = lines(path.join(whole, 'drafts.jsonl')) as DraftItem[];
  assert.equal(drafts.map((x) => x.id), ['q1', 'q2', 'q3', 'q5', 'q6', 'q8']);
  for (const x of drafts) {
    assert.is(x.candidates.length, 4);
    validateRecord({ id: x.id, prompt: x.prompt, criteria: x.criteria, responses: x.candidates.map((c) => ({ id: c.id, text: c.text, grades: x.pregrades![c.id] })) }, 'drafts.jsonl', 0);
  }
  assert.equal(lines(path.join(whole, 'duplicates.jsonl')), [{ id: 'q9', duplicate_of: 'q2', jaccard: 1 }]);

  // Killed (SIGKILL: no chance to clean up) while q6 is judged: q1-q5 are finished.
  const work = path.join(tmp, 'resumed');
  let child: ChildProcess | undefined;
  hook = (b) => {
    if (kindOf(b) === 'judge' && tagOf(b) === 'q6') {
      child?.kill('SIGKILL');
      return { hang: true };
    }
    return undefined;
  };
  const killed = await cliAsync(prepareArgs(work), { cwd: tmp, onStderr: (_t, c) => void (child = c) });
  assert.is(killed.code, null, 'killed by a signal');
  assert.equal(lines(path.join(work, 'prepared.jsonl')).map((x) => x.id), ['q1', 'q2', 'q3', 'q5']);
  const asked: string[] = [];
  hook = (b) => void asked.push(`${kindOf(b)}:${tagOf(b)}`);
  const rerun = await cliAsync(prepareArgs(work), { cwd: tmp });
  assert.is(rerun.code, 0, rerun.stderr);
  assert.equal(lastJson(rerun.stdout).resumed, 5);
  assert.equal([...new Set(asked)].sort(), ['candidate:q6', 'candidate:q8', 'judge:q6', 'judge:q7', 'judge:q8'], 'the finished items were not asked again');
  for (const name of ['prepared.jsonl', 'filtered.jsonl', 'duplicates.jsonl', 'failures.jsonl']) {
    assert.is(fs.readFileSync(path.join(work, name), 'utf8'), fs.readFileSync(path.join(whole, name), 'utf8'), name);
  }

  // Ctrl-C while q5's rubric is drafted: exit 130, finished drafts kept; the rerun does the rest.
  hook = (b) => {
    if (kindOf(b) === 'draft' && tagOf(b) === 'q5') {
      child?.kill('SIGINT');
      return { hang: true };
    }
    return undefined;
  };
  const stopped = await cliAsync(draftArgs(work), { cwd: tmp, onStderr: (_t, c) => void (child = c) });
  assert.is(stopped.code, 130, stopped.stderr);
  assert.match(errorLine({ ...stopped, stderr: stopped.stderr.split('\n').filter((l) => !l.startsWith('[rubrics')).join('\n') }), /interrupted with 3 item\(s\) left \(3 done.*run the same command again/);
  assert.equal(lines(path.join(work, 'drafts.jsonl')).map((x) => x.id), ['q1', 'q2', 'q3']);
  hook = () => undefined;
  const again = await cliAsync(draftArgs(work), { cwd: tmp });
  assert.is(again.code, 0, again.stderr);
  assert.is(fs.readFileSync(path.join(work, 'drafts.jsonl'), 'utf8'), fs.readFileSync(path.join(whole, 'drafts.jsonl'), 'utf8'));
});

test.run();
