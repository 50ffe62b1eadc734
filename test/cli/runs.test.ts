// Real runs of the CLI on the tiny model, in child processes: run folders with typed snake_case
// configs that are valid --config files, policies saved with their tokenizer, resume checks,
// Ctrl-C checkpoints, progress lines off a terminal, and paths relative to where the user stands.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GGUF_FILE_TYPE, readGguf } from '../../src/model/gguf.js';
import { cli, cliAsync, errorLine, ROOT, snapshot } from '../helpers/cli.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-cli-runs-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const SMALL_SFT = ['--batch-size', '1', '--micro-batch-size', '1', '--max-length', '160'];
const json = (p: string) => JSON.parse(fs.readFileSync(p, 'utf8'));
const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!);

test('train-sft: typed snake_case config with relative paths, a policy with its tokenizer; resume refuses changed settings and its config.json resumes', () => {
  const r = cli(['train-sft', '--steps', '2', ...SMALL_SFT, '--save-every', '1', '--out', 'sft'], { cwd: tmp });
  assert.is(r.code, 0, r.stderr);
  const summary = lastJson(r.stdout);
  assert.is(summary.steps, 2);
  const cfg = json(path.join(tmp, 'sft/config.json'));
  assert.is(cfg.steps, 2);
  assert.is(cfg.lr, 1e-2);
  assert.is(cfg.batch_size, 1);
  assert.is(cfg.out, '.');
  assert.is(path.resolve(tmp, 'sft', cfg.data), path.join(ROOT, 'data/train.jsonl'), 'data stored relative to the run folder');
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) assert.ok(fs.existsSync(path.join(tmp, 'sft/policy', f)), f);

  const before = snapshot(path.join(tmp, 'sft'));
  const changed = cli(['train-sft', '--steps', '3', ...SMALL_SFT, '--lr', '0.001', '--batch-size', '2', '--micro-batch-size', '2', '--out', 'sft', '--resume'], { cwd: tmp });
  assert.is(changed.code, 1, changed.stderr);
  assert.match(errorLine(changed), /cannot resume .*sft with other settings: lr 0\.01 -> 0\.001; batch_size 1 -> 2 \(only steps, .* may change; --overwrite starts again\)$/);
  assert.equal(snapshot(path.join(tmp, 'sft')), before, 'nothing touched');

  // The run's own config.json is a valid --config (its paths resolve against its folder).
  const more = cli(['train-sft', '--config', 'sft/config.json', '--resume', '--steps', '3'], { cwd: tmp });
  assert.is(more.code, 0, more.stderr);
  assert.match(more.stderr, /resuming from step 2 of /);
  const steps = fs.readFileSync(path.join(tmp, 'sft/metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
  assert.equal(steps, [1, 2, 3]);
});

test('Ctrl-C checkpoints at the step boundary and says how to resume; off a terminal a progress line every --logging-steps', async () => {
  let sent = false;
  const r = await cliAsync(['train-sft', '--steps', '200', ...SMALL_SFT, '--logging-steps', '1', '--out', 'int'], {
    cwd: tmp,
    onStderr: (text, child) => {
      if (!sent && /\[SFT\] step 2\/200 \| loss \d/.test(text)) {
        sent = true;
        child.kill('SIGINT');
      }
    },
  });
  assert.ok(sent, r.stderr);
  assert.is(r.code, 130, r.stderr);
  assert.match(r.stderr, /\[SFT\] step 1\/200 \| loss \d+\.\d+ \| lr \S+ \| \d+ tok\/s \| ETA \S+/);
  const m = /interrupted at step (\d+) \(checkpoint .*\): resume with --resume/.exec(r.stderr);
  assert.ok(m, r.stderr);
  const step = Number(m![1]);
  assert.ok(fs.existsSync(path.join(tmp, 'int/checkpoints', `step-${String(step).padStart(6, '0')}`, 'trainer_state.json')));
  const resumed = cli(['train-sft', '--steps', String(step + 1), ...SMALL_SFT, '--logging-steps', '1', '--out', 'int', '--resume'], { cwd: tmp });
  assert.is(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`resuming from step ${step} of `));
  assert.is(lastJson(resumed.stdout).steps, step + 1);
});

test('train-rm with LoRA stores its base relative; score-rm resolves paths from INIT_CWD and names a record without criteria; train-grpo saves its policy with the tokenizer', () => {
  const rm = cli(['train-rm', '--steps', '1', '--lora-rank', '2', '--eval-data', '', '--batch-size', '2', '--micro-batch-size', '2', '--max-length', '256', '--out', 'rm'], { cwd: tmp });
  assert.is(rm.code, 0, rm.stderr);
  assert.is(lastJson(rm.stdout).heldout, null);
  const rc = json(path.join(tmp, 'rm/reward-model/reward_config.json'));
  assert.not.ok(path.isAbsolute(rc.backbone.base), rc.backbone.base);
  assert.ok(fs.existsSync(path.join(tmp, 'rm/reward-model', rc.backbone.base, 'config.json')));

  // As `cd sub && npm run score-rm -- --rm ../rm/...`: npm runs in the package root, INIT_CWD is sub.
  const sub = path.join(tmp, 'sub');
  fs.mkdirSync(sub);
  const [first] = fs.readFileSync(path.join(ROOT, 'data/test.jsonl'), 'utf8').split('\n');
  const rec = JSON.parse(first);
  fs.writeFileSync(path.join(sub, 'two.jsonl'), `${first}\n${JSON.stringify({ ...rec, id: 'empty', criteria: [], responses: rec.responses.map((x: { id: string; text: string }) => ({ id: x.id, text: x.text })) })}\n`);
  const s = cli(['score-rm', '--rm', '../rm/reward-model', '--data', 'two.jsonl'], { cwd: ROOT, env: { INIT_CWD: sub } });
  assert.is(s.code, 1, s.stderr);
  const lines = s.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.is(lines.length, rec.responses.length);
  assert.ok(lines.every((l) => l.record === rec.id && typeof l.reward === 'number'));
  assert.is(errorLine(s), `promedical score-rm: error: ${path.join(sub, 'two.jsonl')}:2: criteria: record "empty" has no criteria to score against`);

  const policy = path.join(tmp, 'sft/policy');
  const g = cli(['train-grpo', '--policy', policy, '--rm', 'rm/reward-model', '--steps', '1', '--num-generations', '2', '--prompts-per-step', '1', '--max-new-tokens', '4', '--eval-data', '', '--out', 'grpo'], { cwd: tmp });
  assert.is(g.code, 0, g.stderr);
  const out = lastJson(g.stdout);
  assert.is(out.steps, 1);
  assert.type(out.reward_first, 'number');
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'config.json']) assert.ok(fs.existsSync(path.join(tmp, 'grpo/policy', f)), f);
  const cfg = json(path.join(tmp, 'grpo/config.json'));
  assert.is(cfg.num_generations, 2);
  assert.is(cfg.loss_type, 'grpo');
  assert.is(path.resolve(tmp, 'grpo', cfg.policy), policy);
  assert.is(path.resolve(tmp, 'grpo', cfg.rm), path.join(tmp, 'rm/reward-model'));

  // The llama.cpp engine gets --engine-dtype: its GGUF of the policy is Q8_0.
  if (!fs.existsSync(path.join(ROOT, 'node_modules/node-llama-cpp'))) return console.log('  skipped the llama.cpp run: node-llama-cpp is not installed');
  const l = cli(['train-grpo', '--policy', policy, '--rm', 'rm/reward-model', '--steps', '1', '--num-generations', '2', '--prompts-per-step', '1', '--max-new-tokens', '4', '--eval-data', '',
    '--engine', 'llama.cpp', '--engine-dtype', 'Q8_0', '--out', 'grpo-llama'], { cwd: tmp });
  assert.is(l.code, 0, l.stderr);
  const ggufs = fs.readdirSync(path.join(tmp, 'grpo-llama/engine')).filter((f) => f.endsWith('.gguf'));
  assert.is(ggufs.length, 1, `${ggufs}`);
  const g8 = readGguf(path.join(tmp, 'grpo-llama/engine', ggufs[0]));
  assert.is(g8.get('general.file_type'), GGUF_FILE_TYPE.Q8_0);
  assert.is(g8.tensor('blk.0.attn_q.weight').type, 'Q8_0');
  g8.close();
});

test.run();
