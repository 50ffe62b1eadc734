// promedical eval-bench: the ProMedical-Bench-style evaluation (src/eval/bench.ts) from the command line.
import * as path from 'node:path';
import type { RecordFormat } from '../data/importers.js';
import { BenchError, evaluateBench } from '../eval/bench.js';
import type { GgufDtype } from '../model/gguf.js';
import { initBackend } from '../ops/backend.js';
import { ConfigError, type Field } from '../train/config.js';
import { helpText, PACKAGE_ROOT, parseFlags, userCwd } from './args.js';
import { say } from './inputs.js';

const FIELDS: Record<string, Field> = {
  policy: { kind: 'string', doc: 'What is evaluated: a Qwen3 folder (its answers), response:ID (each record\'s response ID, e.g. response:ideal for HealthBench) or file:PATH (JSONL lines {"id": record id, "text": response}).' },
  baseline: { kind: 'string', nullable: true, doc: 'Evaluated on the same prompts for comparison (default: the policy the train-grpo run of --policy started from); "" for none.' },
  rm: { kind: 'string', doc: 'The judge, a reward model folder.' },
  max_length: { kind: 'int', min: 16, nullable: true, doc: "Longest judge input in tokens (default: the RM's own)." },
  grader: { kind: 'enum', values: ['rm', 'grades'], doc: "rm: the RM judges every criterion; grades: the records' provided grades (needs response:ID sources)." },
  data: { kind: 'string', doc: 'Held-out records, a file or a folder (never trained on).' },
  format: { kind: 'enum', values: ['promedical', 'healthbench', 'kqa', 'kqa-nli', 'rar', 'ultramedical'], doc: 'Format of --data.' },
  limit: { kind: 'int', min: 1, nullable: true, doc: 'Only the first N records.' },
  max_new_tokens: { kind: 'int', min: 1, doc: 'Answer length of policies.' },
  temperature: { kind: 'number', min: 0, doc: "0 answers greedily; > 0 samples, seeded by --seed (Qwen3's non-thinking recommendation: 0.7, --top-p 0.8, --top-k 20)." },
  top_p: { kind: 'number', min: 0, max: 1, exclusiveMin: true, nullable: true, doc: 'Nucleus sampling.' },
  top_k: { kind: 'int', min: 1, nullable: true, doc: 'Top-k sampling.' },
  judge: { kind: 'boolean', doc: 'Also evaluate the RM against gold grades when the records carry them (--no-judge skips).' },
  seed: { kind: 'int', min: 0, doc: 'Bootstrap and sampling seed.' },
  out: { kind: 'string', doc: 'Report folder: report.md, tiers.svg, specialties.svg, responses.jsonl, summary.json.' },
  backend: { kind: 'enum', values: ['auto', 'tensorflow', 'wasm', 'cpu'], doc: 'tfjs backend.' },
  engine: { kind: 'enum', values: ['tfjs', 'llama.cpp', 'openai'], doc: 'Who answers for a model folder: tfjs, llama.cpp (exported to GGUF, in process) or openai (a server).' },
  engine_url: { kind: 'string', nullable: true, doc: "The openai engine's base URL, e.g. http://127.0.0.1:8000." },
  engine_model: { kind: 'string', nullable: true, doc: "The openai engine's model name, as the server serves it." },
  engine_gpu: { kind: 'enum', values: ['off', 'auto', 'cuda', 'vulkan'], doc: "The llama.cpp engine's device." },
  engine_dtype: { kind: 'enum', values: ['F32', 'F16', 'BF16', 'Q8_0'], doc: "The llama.cpp engine's GGUF weights (F32 exact; Q8_0 fastest on CPU)." },
};
const DEFAULTS: Record<string, unknown> = {
  policy: 'runs/train-grpo/policy', baseline: undefined, rm: 'runs/train-rm/reward-model', max_length: null, grader: 'rm', data: 'data/test.jsonl',
  format: 'promedical', limit: null, max_new_tokens: 64, temperature: 0, top_p: null, top_k: null, judge: true, seed: 0, out: 'runs/eval-bench', backend: 'auto',
  engine: 'tfjs', engine_url: null, engine_model: null, engine_gpu: 'off', engine_dtype: 'F32',
};

const ABOUT = `Answers held-out prompts with a policy (or takes given responses), judges every criterion with the
reward model (or uses provided grades) and reports accuracy, S1/S2/S3 and safety compliance per
tier, category and specialty with bootstrap intervals, side by side with a baseline and the paired
difference; judge metrics against gold grades; HealthBench scores where criteria carry points.
Prints one JSON line: { run_dir, overall_accuracy, safety_compliance, s1, s2, s3, ... }.`;

/** What to run first when a default folder is missing. */
const HINTS: Record<string, string> = {
  'runs/train-grpo/policy': 'run `npx promedical train-grpo` first (or pass --policy)',
  'runs/train-rm/reward-model': 'run `npx promedical train-rm` first (or pass --rm)',
};

/** A system source with its path made absolute (response:ID has none). */
function resolveSource(src: string, cwd: string): string {
  if (src.startsWith('response:') || src === '') return src;
  if (src.startsWith('file:')) return `file:${path.resolve(cwd, src.slice('file:'.length))}`;
  return path.resolve(cwd, src);
}

export async function evalBench(argv: string[]): Promise<void> {
  const parsed = parseFlags('eval-bench', argv, FIELDS, ['rm', 'data', 'out']);
  if (parsed.help) return void console.log(helpText('promedical eval-bench [flags]', ABOUT, FIELDS, DEFAULTS));
  const cwd = userCwd();
  const given = parsed.values;
  const a: Record<string, unknown> = { ...DEFAULTS, rm: path.resolve(cwd, DEFAULTS.rm as string), data: path.join(PACKAGE_ROOT, DEFAULTS.data as string), out: path.resolve(cwd, DEFAULTS.out as string), ...given };
  const policy = resolveSource((given.policy as string | undefined) ?? (DEFAULTS.policy as string), cwd);
  const baseline = 'baseline' in given ? (given.baseline === null ? '' : resolveSource(given.baseline as string, cwd)) : undefined;
  if (a.engine === 'openai' && (!a.engine_url || !a.engine_model)) throw new ConfigError('--engine openai needs --engine-url and --engine-model');
  if (typeof a.engine_url === 'string' && !/^https?:\/\/[^\s/]+/.test(a.engine_url)) throw new ConfigError(`--engine-url ${a.engine_url}: not an http(s) URL`);
  await initBackend(a.backend as 'auto');
  try {
    const summary = await evaluateBench({
      policy, baseline, rm: a.rm as string, maxLength: (a.max_length as number | null) ?? undefined, grader: a.grader as 'rm',
      data: a.data as string, format: a.format as RecordFormat, limit: (a.limit as number | null) ?? undefined,
      maxNewTokens: a.max_new_tokens as number, temperature: a.temperature as number, topP: (a.top_p as number | null) ?? undefined,
      topK: (a.top_k as number | null) ?? undefined, judge: a.judge as boolean, seed: a.seed as number, out: a.out as string, log: say('eval-bench'),
      engine: a.engine as 'tfjs', engineUrl: (a.engine_url as string | null) ?? undefined, engineModel: (a.engine_model as string | null) ?? undefined,
      engineGpu: a.engine_gpu === 'off' ? false : (a.engine_gpu as 'auto'), engineDtype: a.engine_dtype as GgufDtype,
    });
    console.log(JSON.stringify(summary));
  } catch (err) {
    // A missing default folder says what to run first.
    const rel = err instanceof BenchError ? path.relative(cwd, err.path) : '';
    if (err instanceof BenchError && HINTS[rel]) err.message = `${err.message}: ${HINTS[rel]}`;
    throw err;
  }
}
