// ProMedical-Bench-style evaluation end to end (what `npm run eval-bench` runs): answer held-out
// prompts with a policy (or take given responses), judge every criterion with the criteria-injected
// RM (or use provided grades), compare with a baseline on the same prompts, score HealthBench
// records, evaluate the judge against gold grades, and write the report folder.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { RecordFormat } from '../data/importers.js';
import { jsonLines } from '../data/lines.js';
import { loadRecords } from '../data/records.js';
import { DataError, type RubricRecord } from '../data/schema.js';
import { CriteriaRewardModel } from '../reward/model.js';
import type { GgufDtype } from '../model/gguf.js';
import { createRolloutEngine, type RolloutEngine, type RolloutEngineKind } from '../rollout/engine.js';
import { loadPretrained } from '../train/pretrained.js';
import type { Interval } from './bootstrap.js';
import { healthbenchExample, healthbenchReport, type HealthBenchExampleScore, type HealthBenchReport } from './healthbench.js';
import { evaluateJudge, type JudgeMetrics } from './judge.js';
import { comparePolicies, evaluateGradedResponses, evaluatePolicyResponses, policyResponses, type PolicyComparison, type PolicyMetric, type PolicyReport } from './policy.js';
import { writeBenchReport } from './report.js';

/** A setup problem of the bench (a system or judge folder that is not there), with its path. */
export class BenchError extends Error {
  override readonly name = 'BenchError';
  constructor(
    /** The folder or source the problem is about. */
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

type Source = { kind: 'response'; id: string } | { kind: 'file'; file: string } | { kind: 'model'; dir: string };

function parseSource(source: string): Source {
  if (source.startsWith('response:')) return { kind: 'response', id: source.slice('response:'.length) };
  if (source.startsWith('file:')) return { kind: 'file', file: source.slice('file:'.length) };
  return { kind: 'model', dir: source };
}

function checkModelSource(dir: string): void {
  if (!fs.existsSync(path.join(dir, 'config.json'))) {
    throw new BenchError(dir, `${dir} is not a Qwen3 folder (no config.json); a system is a Qwen3 folder, response:ID or file:PATH`);
  }
}

export interface SystemResponseOptions {
  /** Answer length for a model folder (default 64). */
  maxNewTokens?: number;
  /** 0 (default) answers greedily; > 0 samples, seeded by `seed`. */
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  /** Prompts per generate call (default policyResponses'). */
  batchSize?: number;
  /** Who answers for a model folder: tfjs (default), llama.cpp (the folder exported to GGUF and
   * run in process) or openai (a server at `engineUrl` serving it as `engineModel`). */
  engine?: RolloutEngineKind;
  engineUrl?: string;
  engineModel?: string;
  /** The llama.cpp engine's device (default off). */
  engineGpu?: false | 'auto' | 'cuda' | 'vulkan';
  /** The llama.cpp engine's GGUF weights (default F32). */
  engineDtype?: GgufDtype;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

/**
 * The response text of a system to each record, in order. `source` is `response:ID` (each
 * record's own response ID; a record without it is an error naming the record), `file:PATH`
 * (JSON Lines `{"id": record id, "text": response}`; a bad line or a record without a line is a
 * DataError naming the file and line) or a Qwen3 folder (its answers, greedy unless
 * `temperature` > 0, with the folder's tokenizer or the bundled one).
 */
export async function systemResponses(source: string, records: RubricRecord[], opts: SystemResponseOptions = {}): Promise<string[]> {
  const s = parseSource(source);
  if (s.kind === 'response') {
    return records.map((r) => {
      const response = r.responses.find((x) => x.id === s.id);
      if (!response) throw new Error(`record ${r.id} has no response "${s.id}"`);
      return response.text;
    });
  }
  if (s.kind === 'file') {
    const byId = new Map<string, string>();
    for await (const item of jsonLines(s.file)) {
      if (item instanceof Error) throw item; // names the file and line
      const v = item.value as { id?: unknown; text?: unknown } | null;
      if (typeof v?.id !== 'string' || typeof v.text !== 'string') throw new DataError(s.file, item.line, '', 'expected {"id": string, "text": string}');
      byId.set(v.id, v.text);
    }
    return records.map((r) => {
      const text = byId.get(r.id);
      if (text === undefined) throw new DataError(s.file, 0, '', `no response for record ${r.id}`);
      return text;
    });
  }
  checkModelSource(s.dir);
  const log = opts.log ?? ((line: string) => process.stderr.write(`[promedical] ${line}\n`));
  const temperature = opts.temperature ?? 0;
  const maxNewTokens = opts.maxNewTokens ?? 64;
  log(`answering ${records.length} prompts with ${s.dir} (${temperature > 0 ? `sampling at temperature ${temperature}` : 'greedy'}, up to ${maxNewTokens} tokens)`);
  const { model, tokenizer } = await loadPretrained(s.dir);
  const kind = opts.engine ?? 'tfjs';
  let engine: RolloutEngine | undefined;
  let ggufDir: string | undefined;
  try {
    if (kind === 'llama.cpp') {
      ggufDir = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-bench-gguf-'));
      engine = await createRolloutEngine('llama.cpp', { policy: model, tokenizer, dir: ggufDir, gpu: opts.engineGpu ?? false, dtype: opts.engineDtype });
    } else if (kind === 'openai') {
      if (!opts.engineUrl || !opts.engineModel) throw new Error('the openai engine needs engineUrl and engineModel');
      engine = await createRolloutEngine('openai', { url: opts.engineUrl, model: opts.engineModel });
    }
    if (engine) log(`answers from the ${kind} engine`);
    return await policyResponses(model, tokenizer, records, { maxNewTokens, temperature, topP: opts.topP, topK: opts.topK, seed: opts.seed ?? 0, batchSize: opts.batchSize, engine });
  } finally {
    await engine?.close();
    if (ggufDir) fs.rmSync(ggufDir, { recursive: true, force: true });
    model.dispose();
  }
}

/**
 * The policy a train-grpo run started from, as the default baseline of its policy `policyDir`
 * (<run>/policy): the `policy` of <run>/config.json. A relative path there is relative to the run
 * folder; one that exists only relative to the working folder (runs written before that
 * convention) is taken as written. Undefined when `policyDir` is not a folder source, or the run
 * folder has no config.json or no `policy` in it.
 */
export function defaultBaseline(policyDir: string): string | undefined {
  if (parseSource(policyDir).kind !== 'model') return undefined;
  const runDir = path.dirname(policyDir);
  const file = path.join(runDir, 'config.json');
  if (!fs.existsSync(file)) return undefined;
  let config: unknown;
  try {
    config = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new DataError(file, 0, '', `not valid JSON: ${(err as Error).message}`);
  }
  const policy = (config as { policy?: unknown } | null)?.policy;
  if (typeof policy !== 'string' || policy === '') return undefined;
  if (path.isAbsolute(policy) || parseSource(policy).kind !== 'model') return policy;
  const inRun = path.join(runDir, policy);
  return fs.existsSync(inRun) || !fs.existsSync(policy) ? inRun : policy;
}

/**
 * The records every system can be evaluated on: those with criteria and, for each `response:ID`
 * source, with a response ID. How many are left out for lacking a response is logged.
 */
export function benchRecords(records: RubricRecord[], sources: string[], log: (line: string) => void = () => {}): RubricRecord[] {
  let kept = records.filter((r) => r.criteria.length > 0);
  for (const s of sources.map(parseSource)) {
    if (s.kind !== 'response') continue;
    const before = kept.length;
    kept = kept.filter((r) => r.responses.some((x) => x.id === s.id));
    if (kept.length < before) log(`${before - kept.length} records have no response "${s.id}" and are left out`);
  }
  return kept;
}

/** The headline metrics of the summary. */
export const BENCH_METRICS = ['overall_accuracy', 'safety_compliance', 's1', 's2', 's3'] as const;
export type BenchMetric = (typeof BENCH_METRICS)[number];

/** summary.json (and the line eval-bench prints): the evaluated policy's means first. */
export interface BenchSummary extends Record<BenchMetric, number> {
  run_dir: string;
  intervals: Record<BenchMetric, Interval>;
  baseline?: { name: string } & Record<BenchMetric, number>;
  /** Policy minus baseline on the same prompts (paired bootstrap). */
  difference?: Record<BenchMetric, Interval>;
  healthbench?: { name: string; score: number; std: number; n: number }[];
  judge?: { pairwise_accuracy?: number; pointwise_accuracy?: number; kappa?: number; safety_veto_f1?: number };
  report: string;
  charts: string[];
}

/** The summary of evaluated systems (the first is the policy under test, the second its baseline). */
export function benchSummary(input: {
  runDir: string;
  policies: { name: string; report: PolicyReport }[];
  comparison?: Record<PolicyMetric, PolicyComparison>;
  healthbench?: { name: string; report: HealthBenchReport }[];
  judge?: JudgeMetrics;
  report: string;
  charts: string[];
}): BenchSummary {
  const pick = <T>(f: (m: BenchMetric) => T) => Object.fromEntries(BENCH_METRICS.map((m) => [m, f(m)])) as Record<BenchMetric, T>;
  const [main, baseline] = input.policies;
  const { comparison, healthbench, judge } = input;
  // Key order is the printed order: the policy's means, then everything else.
  return {
    run_dir: input.runDir,
    ...pick((m) => main.report.overall[m].mean),
    intervals: pick((m) => main.report.overall[m]),
    ...(baseline ? { baseline: { name: baseline.name, ...pick((m) => baseline.report.overall[m].mean) } } : {}),
    ...(comparison ? { difference: pick((m) => comparison[m].difference) } : {}),
    ...(healthbench ? { healthbench: healthbench.map((h) => ({ name: h.name, score: h.report.overall.score, std: h.report.overall.std, n: h.report.overall.n })) } : {}),
    ...(judge ? { judge: { pairwise_accuracy: judge.pairwise_accuracy, pointwise_accuracy: judge.pointwise_accuracy, kappa: judge.kappa, safety_veto_f1: judge.safety_veto_f1 } } : {}),
    report: input.report,
    charts: input.charts,
  };
}

export interface BenchOptions {
  /** What is evaluated: a Qwen3 folder, response:ID or file:PATH (see systemResponses). */
  policy: string;
  /** Evaluated on the same prompts for comparison (default defaultBaseline(policy)); '' for none. */
  baseline?: string;
  /** The judge, a CriteriaRewardModel folder: needed unless grader is 'grades' and judge is false. */
  rm?: string;
  /** Longest judge input in tokens (default: the RM's own, from training). */
  maxLength?: number;
  /** 'rm' (default): the RM judges every criterion; 'grades': the records' provided grades of
   * the response (needs response:ID sources). */
  grader?: 'rm' | 'grades';
  /** Held-out records, file or folder. */
  data: string;
  /** Default 'promedical'. */
  format?: RecordFormat;
  /** Only the first N records. */
  limit?: number;
  /** Answer length for policies (default 64). */
  maxNewTokens?: number;
  /** 0 (default) answers greedily; > 0 samples, seeded by `seed`. */
  temperature?: number;
  topP?: number;
  topK?: number;
  /** Evaluate the RM against the records' gold grades when they have any (default true). */
  judge?: boolean;
  /** Who answers for a model folder (SystemResponseOptions.engine; default tfjs). */
  engine?: RolloutEngineKind;
  engineUrl?: string;
  engineModel?: string;
  engineGpu?: false | 'auto' | 'cuda' | 'vulkan';
  engineDtype?: GgufDtype;
  /** Bootstrap and sampling seed (default 0). */
  seed?: number;
  /** Report folder: report.md, tiers.svg, specialties.svg, responses.jsonl, summary.json. */
  out: string;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

/**
 * Runs the whole evaluation: checks the systems, loads and selects the records (benchRecords),
 * gets each system's responses (systemResponses), judges them, compares policy and baseline,
 * adds HealthBench scores where criteria carry points and judge metrics where responses carry
 * grades, writes the report folder (see BenchOptions.out) and returns the summary it wrote.
 */
export async function evaluateBench(opts: BenchOptions): Promise<BenchSummary> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`[promedical] ${line}\n`));
  const grader = opts.grader ?? 'rm';
  const seed = opts.seed ?? 0;
  const format = opts.format ?? 'promedical';
  const judge = opts.judge ?? true;
  if (grader !== 'rm' && grader !== 'grades') throw new Error(`grader must be rm or grades, got "${grader as string}"`);

  // Every system is checked before anything is loaded.
  const baseline = opts.baseline ?? defaultBaseline(opts.policy) ?? '';
  const sources = [opts.policy, ...(baseline ? [baseline] : [])];
  for (const src of sources) {
    const s = parseSource(src);
    if (s.kind === 'model') checkModelSource(s.dir);
    if (grader === 'grades' && s.kind !== 'response') throw new Error(`grader "grades" needs response:ID sources (given grades belong to the records' responses), got ${src}`);
  }

  let records = await loadRecords(opts.data, { format });
  if (opts.limit !== undefined) records = records.slice(0, opts.limit);
  // Every system answers the same prompts.
  records = benchRecords(records, sources, log);
  if (records.length === 0) throw new DataError(opts.data, 0, '', 'no records to evaluate');

  const needRm = grader === 'rm' || judge;
  if (needRm && !opts.rm) throw new Error('a reward model folder (rm) is needed to judge the responses or for the judge evaluation');
  if (needRm && !fs.existsSync(path.join(opts.rm!, 'reward_config.json'))) throw new BenchError(opts.rm!, `no reward model at ${opts.rm} (no reward_config.json)`);
  const rm = needRm ? await CriteriaRewardModel.load(opts.rm!, { maxLength: opts.maxLength }) : null;
  const evaluated: { name: string; report: PolicyReport }[] = [];
  const generation = {
    maxNewTokens: opts.maxNewTokens, temperature: opts.temperature, topP: opts.topP, topK: opts.topK, seed, log,
    engine: opts.engine, engineUrl: opts.engineUrl, engineModel: opts.engineModel, engineGpu: opts.engineGpu, engineDtype: opts.engineDtype,
  };
  let judgeMetrics: JudgeMetrics | undefined;
  try {
    for (const src of sources) {
      const s = parseSource(src);
      const report = s.kind === 'response' && grader === 'grades'
        ? evaluateGradedResponses(records, s.id, seed)
        : await evaluatePolicyResponses(rm!, records, await systemResponses(src, records, generation), seed);
      evaluated.push({ name: src, report });
    }
    // The judge itself against gold grades, when the records carry graded responses.
    const graded = records.filter((r) => r.responses.some((x) => x.grades && Object.keys(x.grades).length > 0));
    judgeMetrics = rm && judge && graded.length > 0 ? await evaluateJudge(rm, graded) : undefined;
  } finally {
    rm?.dispose();
  }
  const comparison = evaluated.length === 2 ? comparePolicies(evaluated[0].report, evaluated[1].report, seed) : undefined;

  // HealthBench scores where criteria carry points (imported HealthBench records).
  const withPoints = (r: RubricRecord) => r.criteria.some((c) => c.points !== undefined && c.points > 0);
  const healthbench = records.some(withPoints)
    ? evaluated.map((e) => {
        const examples = e.report.responses
          .map((row, i) => healthbenchExample(records[i], Object.fromEntries(records[i].criteria.map((c, j) => [c.id, row.grades[j]]))))
          .filter((x): x is HealthBenchExampleScore => x !== null);
        return { name: e.name, report: healthbenchReport(examples, seed) };
      })
    : undefined;

  fs.mkdirSync(opts.out, { recursive: true });
  fs.writeFileSync(
    path.join(opts.out, 'responses.jsonl'),
    evaluated.flatMap((e) => e.report.responses.map(({ grades: _g, ...r }) => JSON.stringify({ system: e.name, ...r }))).join('\n') + '\n',
  );
  const temperature = opts.temperature ?? 0;
  const { report, charts } = await writeBenchReport(opts.out, {
    title: 'ProMedical-Bench-style evaluation',
    policies: evaluated,
    comparison,
    judge: judgeMetrics,
    healthbench,
    setup: [
      `data: ${opts.data} (${format}), ${records.length} prompts`,
      `grader: ${grader === 'rm' ? `criteria-injected reward model ${opts.rm}` : 'provided grades'}`,
      `systems: ${sources.join(' vs ')}`,
      `decoding: ${temperature > 0 ? `sampling, temperature ${temperature}${opts.topP !== undefined ? `, top-p ${opts.topP}` : ''}${opts.topK !== undefined ? `, top-k ${opts.topK}` : ''}` : 'greedy'}, up to ${opts.maxNewTokens ?? 64} new tokens`,
      `seed ${seed}`,
    ],
  });
  const summary = benchSummary({ runDir: opts.out, policies: evaluated, comparison, healthbench, judge: judgeMetrics, report, charts });
  fs.writeFileSync(path.join(opts.out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  return summary;
}
