// The CLI's answers to bad input, in child processes as a user meets them: the exit code, one
// line naming the flag or field, and nothing on disk touched (the table of issue-style defects:
// each command here once went wrong silently).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GRPO_CLI_DEFAULTS, GRPO_CONFIG_DEFAULTS, REWARD_CONFIG_DEFAULTS } from '../../src/train/config.js';
import { cli, errorLine, ROOT, snapshot } from '../helpers/cli.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-cli-usage-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A folder holding a previous run's files. */
function usedRun(name: string): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(path.join(dir, 'checkpoints', 'step-000002'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), '{"steps": 2}\n');
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), '{"step":1,"loss":1}\n{"step":2,"loss":0.5}\n');
  fs.writeFileSync(path.join(dir, 'checkpoints', 'step-000002', 'trainer_state.json'), '{"step":2}');
  return dir;
}

test('a value that is not a number is a usage error before anything runs (exit 2, one line naming the flag)', () => {
  for (const [command, flag] of [['train-sft', '--lr'], ['train-grpo', '--lr'], ['train-grpo', '--steps'], ['train-rm', '--batch-size']]) {
    const out = path.join(tmp, `nan-${command}`);
    const r = cli([command, '--steps', '1', flag, 'abc', '--out', out], { cwd: tmp });
    assert.is(r.code, 2, `${command} ${flag}: ${r.stderr}`);
    assert.is(errorLine(r), `promedical ${command}: error: ${flag} "abc": not a number; expected ${flag === '--lr' ? 'a finite number > 0' : 'a whole number >= 1'}`);
    assert.match(r.stderr, new RegExp(`see promedical ${command} --help`));
    assert.not.ok(fs.existsSync(out), 'no run folder');
  }
});

test('--steps 1.5, 0 and -1 are refused before a used run folder is touched', () => {
  const dir = usedRun('steps');
  const before = snapshot(dir);
  for (const [v, why] of [['1.5', 'not a whole number'], ['0', 'out of range'], ['-1', 'out of range']]) {
    const r = cli(['train-rm', '--steps', v, '--out', dir, '--overwrite'], { cwd: tmp });
    assert.is(r.code, 2, r.stderr);
    assert.is(errorLine(r), `promedical train-rm: error: --steps ${v}: ${why}; expected a whole number >= 1`);
  }
  assert.equal(snapshot(dir), before);
});

test('unknown backends and loss types name what is allowed', () => {
  const b = cli(['train-rm', '--backend', 'gpu'], { cwd: tmp });
  assert.is(b.code, 2);
  assert.is(errorLine(b), 'promedical train-rm: error: --backend gpu: not an allowed value; expected one of auto, tensorflow, wasm, cpu');
  for (const v of ['foo', 'dr-grpo']) {
    const r = cli(['train-grpo', '--loss-type', v], { cwd: tmp });
    assert.is(r.code, 2);
    assert.is(errorLine(r), `promedical train-grpo: error: --loss-type ${v}: not an allowed value; expected one of grpo, bnpo, dr_grpo, dapo, cispo, sapo, luspo, vespo`);
  }
});

test('rollout engine flags: an openai engine needs a URL, a model name and LoRA; eval-bench checks its own; nothing is written', () => {
  const cases: [string[], string][] = [
    [['train-grpo', '--engine', 'openai'], 'promedical train-grpo: error: engine = "openai" needs engine_url: the server\'s base URL (e.g. http://127.0.0.1:8000)'],
    [['train-grpo', '--engine', 'openai', '--engine-url', 'localhost:8000', '--engine-model', 'm'], 'promedical train-grpo: error: engine_url = "localhost:8000": not an http(s) URL'],
    [['train-grpo', '--engine', 'openai', '--engine-url', 'http://127.0.0.1:9'], 'promedical train-grpo: error: engine = "openai" needs engine_model: the model name the server serves (e.g. Qwen/Qwen3-0.6B)'],
    [['train-grpo', '--engine-dtype', 'Q8_0'], 'promedical train-grpo: error: engine_dtype = "Q8_0" applies to engine = "llama.cpp" only (engine is "tfjs")'],
    [['train-grpo', '--engine-gpu', 'cuda'], 'promedical train-grpo: error: engine_gpu = "cuda" applies to engine = "llama.cpp" only (engine is "tfjs")'],
    [['train-grpo', '--engine', 'llama.cpp', '--engine-dtype', 'Q4_0'], 'promedical train-grpo: error: --engine-dtype Q4_0: not an allowed value; expected one of F32, F16, BF16, Q8_0'],
    [['train-grpo', '--engine', 'vllm'], 'promedical train-grpo: error: --engine vllm: not an allowed value; expected one of tfjs, llama.cpp, openai'],
    [['eval-bench', '--engine', 'openai', '--engine-url', 'http://127.0.0.1:9'], 'promedical eval-bench: error: --engine openai needs --engine-url and --engine-model'],
  ];
  const dir = fs.mkdtempSync(path.join(tmp, 'engine-'));
  for (const [argv, want] of cases) {
    const r = cli([...argv, '--out', path.join(dir, 'out')], { cwd: dir });
    assert.is(r.code, 2, r.stderr);
    assert.is(errorLine(r), want);
  }
  const lora = cli(['train-grpo', '--engine', 'openai', '--engine-url', 'http://127.0.0.1:9', '--engine-model', 'm', '--out', path.join(dir, 'out')], { cwd: dir });
  assert.is(lora.code, 2, lora.stderr);
  assert.match(errorLine(lora), /--engine openai syncs the policy as LoRA adapters \(vLLM's load_lora_adapter\): add --lora-rank R/);
  assert.equal(snapshot(dir), {}, 'nothing written');
});

test('a --rm or --policy path that holds no model is an error, and nothing is trained into it', () => {
  const rm = cli(['train-grpo', '--rm', 'path/with-typo', '--out', 'g'], { cwd: tmp });
  assert.is(rm.code, 2);
  assert.is(errorLine(rm), `promedical train-grpo: error: --rm ${path.join(tmp, 'path/with-typo')}: no reward model there (no reward_config.json)`);
  const policy = cli(['train-grpo', '--policy', 'policy-typo', '--out', 'g'], { cwd: tmp });
  assert.is(policy.code, 2);
  assert.is(errorLine(policy), `promedical train-grpo: error: --policy ${path.join(tmp, 'policy-typo')}: no Qwen3 model there (no config.json)`);
  for (const p of ['path', 'policy-typo', 'g']) assert.not.ok(fs.existsSync(path.join(tmp, p)), p);
});

test('a new run into a used --out is refused unless --resume or --overwrite, and the old run is intact', () => {
  const dir = usedRun('used');
  const before = snapshot(dir);
  const r = cli(['train-sft', '--out', dir], { cwd: tmp });
  assert.is(r.code, 1, r.stderr);
  assert.match(errorLine(r), /^promedical train-sft: error: .*used is not empty \(.*\): --resume continues the run there, --overwrite replaces it, or choose another --out$/);
  const both = cli(['train-sft', '--out', dir, '--resume', '--overwrite'], { cwd: tmp });
  assert.is(both.code, 2);
  assert.match(errorLine(both), /resume and overwrite exclude each other/);
  const notRun = path.join(tmp, 'mine');
  fs.mkdirSync(notRun);
  fs.writeFileSync(path.join(notRun, 'thesis.txt'), 'not a run');
  const o = cli(['train-sft', '--out', notRun, '--overwrite'], { cwd: tmp });
  assert.is(o.code, 1);
  assert.match(errorLine(o), /holds files that are not a run's .*--overwrite only replaces run folders/);
  assert.is(fs.readFileSync(path.join(notRun, 'thesis.txt'), 'utf8'), 'not a run');
  assert.equal(snapshot(dir), before);
});

test('unknown flags and commands: one line, a pointer to --help, exit 2', () => {
  const r = cli(['train-rm', '--step', '3'], { cwd: tmp });
  assert.is(r.code, 2);
  assert.is(errorLine(r), 'promedical train-rm: error: unknown flag --step (did you mean --steps?)');
  assert.match(r.stderr, /see promedical train-rm --help/);
  const c = cli(['train-r'], { cwd: tmp });
  assert.is(c.code, 2);
  assert.match(errorLine(c), /unknown command "train-r"; the commands: train-rm, score-rm, serve-rm, train-sft, train-grpo, eval-bench, export-gguf/);
});

test('an error inside a run is one line (exit 1), the stack only with --verbose; a config file is checked field by field', () => {
  const bad = path.join(tmp, 'bad.jsonl');
  fs.writeFileSync(bad, '{"id": "x", "prompt": [{"role": "user", "content": "hi"}], "criteria": [], "responses": []}\n{not json\n');
  const r = cli(['train-sft', '--data', bad, '--out', 'bad-run'], { cwd: tmp });
  assert.is(r.code, 1, r.stderr);
  assert.match(errorLine(r), new RegExp(`^promedical train-sft: error: ${bad.replace(/[.]/g, '\\.')}:2: `));
  assert.ok(r.stderr.length < 2000, `stderr is short (${r.stderr.length} chars)`);
  const v = cli(['train-sft', '--data', bad, '--out', 'bad-run2', '--verbose'], { cwd: tmp });
  assert.is(v.code, 1);
  assert.match(v.stderr, /\n\s+at /);
  const cfg = path.join(tmp, 'cfg.json');
  fs.writeFileSync(cfg, JSON.stringify({ steps: 'abc' }));
  const c = cli(['train-grpo', '--config', cfg], { cwd: tmp });
  assert.is(c.code, 2);
  assert.is(errorLine(c), 'promedical train-grpo: error: steps = "abc": not a finite number; expected a whole number >= 1');
  fs.writeFileSync(cfg, JSON.stringify({ stepz: 3 }));
  const u = cli(['train-grpo', '--config', cfg], { cwd: tmp });
  assert.is(u.code, 2);
  assert.match(errorLine(u), /cfg\.json: unknown field "stepz"/);
});

test('--help is generated from the config docs and shows the library defaults; every script has --help and writes nothing', () => {
  const rm = cli(['train-rm', '--help'], { cwd: tmp });
  assert.is(rm.code, 0);
  assert.match(rm.stdout, new RegExp(`--lr X\\s+Peak learning rate \\(after warmup\\)\\. \\(default ${REWARD_CONFIG_DEFAULTS.lr}\\)`));
  assert.match(rm.stdout, new RegExp(`--batch-size N\\s+.*\\(default ${REWARD_CONFIG_DEFAULTS.batch_size}\\)`));
  const grpo = cli(['train-grpo', '--help'], { cwd: tmp });
  // The command's own defaults (the paper's), with the library's (TRL's) beside them where they differ.
  assert.match(grpo.stdout, new RegExp(`--beta X\\s+.*\\(default ${GRPO_CLI_DEFAULTS.beta}; the library's: ${GRPO_CONFIG_DEFAULTS.beta}\\)`));
  assert.match(grpo.stdout, /--loss-type grpo\|bnpo\|dr_grpo\|dapo\|cispo\|sapo\|luspo\|vespo\s+.*\(default grpo; the library's: dapo\)/);
  assert.match(grpo.stdout, new RegExp(`--num-generations N\\s+.*\\(default ${GRPO_CONFIG_DEFAULTS.num_generations}\\)`));
  for (const c of ['score-rm', 'train-sft', 'eval-bench']) assert.match(cli([c, '--help'], { cwd: tmp }).stdout, new RegExp(`^Usage: promedical ${c}`));
  const quiet = fs.mkdtempSync(path.join(tmp, 'help-'));
  for (const script of ['data/make-synthetic.ts', 'bench/run.ts', 'weights/make-tiny.ts']) {
    const s = spawnScript(script, quiet);
    assert.is(s.code, 0, script);
    assert.match(s.stdout, /^Usage: /, script);
  }
  assert.equal(snapshot(quiet), {}, 'nothing written');
  // npm's banner would break `| jq`: the README pipes the silent forms.
  assert.match(fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8'), /npm run -s train-rm \| jq/);
});

function spawnScript(script: string, cwd: string) {
  const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), path.join(ROOT, script), '--help'], { cwd, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout };
}

test.run();
