// ProMedical-Bench-style evaluation: answer held-out prompts with a policy (or take given
// responses), judge every criterion with the criteria-injected RM (or use provided grades), and
// report accuracy, S1/S2/S3 and safety compliance per tier, category and specialty with bootstrap
// intervals; side by side with a baseline and the paired difference; judge metrics against gold
// grades; HealthBench scores per axis and theme when the criteria carry points.
//   npm run eval-bench              # last train-grpo policy vs its SFT starting point, data/test.jsonl
//   npm run eval-bench -- --help
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  CriteriaRewardModel, comparePolicies, evaluateJudge, healthbenchExample, healthbenchReport, initBackend, jsonLines, loadQwen3,
  loadRecords, loadTokenizer, policyResponses, writeBenchReport, evaluateGradedResponses, evaluatePolicyResponses,
  type HealthBenchExampleScore, type PolicyReport, type RubricRecord,
} from '../src/index.js';

const HELP = `Usage: npm run eval-bench -- [flags]
  --policy SRC       What is evaluated (default: the last train-grpo policy, runs/train-grpo/policy).
                     SRC is a Qwen3 folder (its greedy answers), response:ID (each record's own
                     response ID, e.g. response:ideal for HealthBench) or file:PATH (JSONL lines
                     {"id": record id, "text": response})
  --baseline SRC     Evaluated on the same prompts for comparison (default: the policy the last
                     train-grpo run started from, from its config.json); "" for none
  --rm DIR           The judge (default runs/train-rm/reward-model)
  --max-length N     Longest judge input in tokens (default: the RM's own, from training); an
                     input whose criterion and last prompt turn alone are longer is an error
  --grader NAME      rm (default: the RM judges every criterion) or grades (the records' provided
                     grades of the response; needs response:ID sources)
  --data PATH        Held-out records, file or folder (default data/test.jsonl: never trained on)
  --format NAME      promedical (default), healthbench, kqa, kqa-nli, rar, ultramedical
  --limit N          Only the first N records
  --max-new-tokens N Answer length for policies (default 64)
  --temperature X    0 (default) answers greedily; > 0 samples (Qwen3's non-thinking
                     recommendation: 0.7 with --top-p 0.8 --top-k 20), seeded by --seed
  --top-p X, --top-k N
  --no-judge         Skip the judge evaluation (RM vs gold grades; on when records carry grades)
  --seed N           Bootstrap and sampling seed (default 0)
  --out DIR          Report folder (default runs/eval-bench): report.md, tiers.svg, specialties.svg,
                     responses.jsonl, summary.json
  --backend NAME     auto (default), tensorflow, wasm or cpu
Prints one JSON line: { run_dir, overall_accuracy, safety_compliance, s1, s2, s3, ... } for the
evaluated policy, with baseline values and differences when there is a baseline.`;

const { values: a } = parseArgs({
  options: {
    policy: { type: 'string', default: 'runs/train-grpo/policy' },
    baseline: { type: 'string' },
    rm: { type: 'string', default: 'runs/train-rm/reward-model' },
    'max-length': { type: 'string' },
    grader: { type: 'string', default: 'rm' },
    data: { type: 'string', default: 'data/test.jsonl' },
    format: { type: 'string', default: 'promedical' },
    limit: { type: 'string' },
    'max-new-tokens': { type: 'string', default: '64' },
    temperature: { type: 'string', default: '0' },
    'top-p': { type: 'string' },
    'top-k': { type: 'string' },
    'no-judge': { type: 'boolean', default: false },
    seed: { type: 'string', default: '0' },
    out: { type: 'string', default: 'runs/eval-bench' },
    backend: { type: 'string', default: 'auto' },
    help: { type: 'boolean', default: false },
  },
});
if (a.help) {
  console.log(HELP);
  process.exit(0);
}
const say = (line: string) => process.stderr.write(`[eval-bench] ${line}\n`);
const fail = (msg: string): never => {
  say(msg);
  process.exit(1);
};
const seed = Number(a.seed);
if (a.grader !== 'rm' && a.grader !== 'grades') fail(`--grader must be rm or grades, got "${a.grader}"`);

// The baseline by default: where the last train-grpo run started.
let baseline = a.baseline;
if (baseline === undefined) {
  const cfg = path.join(path.dirname(a.policy!), 'config.json');
  baseline = fs.existsSync(cfg) ? (JSON.parse(fs.readFileSync(cfg, 'utf8')).policy as string | undefined) ?? '' : '';
}
const sources = [{ name: a.policy!, src: a.policy! }, ...(baseline ? [{ name: baseline, src: baseline }] : [])];
for (const s of sources) {
  if (!s.src.startsWith('response:') && !s.src.startsWith('file:') && !fs.existsSync(path.join(s.src, 'config.json'))) {
    fail(`${s.src} is not a Qwen3 folder${s.src === 'runs/train-grpo/policy' ? ': run `npm run train-grpo` first (or pass --policy)' : ''}`);
  }
  if (a.grader === 'grades' && !s.src.startsWith('response:')) fail(`--grader grades needs response:ID sources (given grades belong to the records' responses), got ${s.src}`);
}

await initBackend(a.backend as 'auto');
let records = await loadRecords(a.data!, { format: a.format as 'promedical' });
if (a.limit) records = records.slice(0, Number(a.limit));
records = records.filter((r) => r.criteria.length > 0);
// Every system answers the same prompts: records lacking a named response are left out (and said).
for (const s of sources.filter((x) => x.src.startsWith('response:'))) {
  const id = s.src.slice('response:'.length);
  const before = records.length;
  records = records.filter((r) => r.responses.some((x) => x.id === id));
  if (records.length < before) say(`${before - records.length} records have no response "${id}" and are left out`);
}
if (records.length === 0) fail(`no records to evaluate in ${a.data}`);

const rm = a.grader === 'rm' || !a['no-judge'] ? await loadRm() : null;
async function loadRm(): Promise<CriteriaRewardModel> {
  if (!fs.existsSync(path.join(a.rm!, 'reward_config.json'))) fail(`no reward model at ${a.rm}: run \`npm run train-rm\` first (or pass --rm)`);
  return CriteriaRewardModel.load(a.rm!, { maxLength: a['max-length'] ? Number(a['max-length']) : undefined });
}

/** Each system's response texts, one per record. */
async function textsOf(src: string): Promise<string[]> {
  if (src.startsWith('response:')) {
    const id = src.slice('response:'.length);
    return records.map((r) => r.responses.find((x) => x.id === id)!.text);
  }
  if (src.startsWith('file:')) {
    const file = src.slice('file:'.length);
    const byId = new Map<string, string>();
    for await (const item of jsonLines(file)) {
      if (item instanceof Error) throw item; // names the file and line
      const v = item.value as { id?: unknown; text?: unknown };
      if (typeof v.id !== 'string' || typeof v.text !== 'string') fail(`${file}:${item.line}: expected {"id": string, "text": string}`);
      byId.set(v.id as string, v.text as string);
    }
    return records.map((r) => byId.get(r.id) ?? fail(`${file}: no response for record ${r.id}`));
  }
  const temperature = Number(a.temperature);
  say(`answering ${records.length} prompts with ${src} (${temperature > 0 ? `sampling at temperature ${temperature}` : 'greedy'}, up to ${a['max-new-tokens']} tokens)`);
  const policy = await loadQwen3(src);
  const tok = loadTokenizer(fs.existsSync(path.join(src, 'tokenizer.json')) ? src : undefined);
  const texts = await policyResponses(policy, tok, records, {
    maxNewTokens: Number(a['max-new-tokens']), temperature, topP: a['top-p'] ? Number(a['top-p']) : undefined, topK: a['top-k'] ? Number(a['top-k']) : undefined, seed,
  });
  policy.dispose();
  return texts;
}

/** Each system judged on every record: by the records' provided grades, or by the RM. */
const evaluated: { name: string; report: PolicyReport }[] = [];
for (const s of sources) {
  const report = a.grader === 'grades'
    ? evaluateGradedResponses(records, s.src.slice('response:'.length), seed)
    : await evaluatePolicyResponses(rm!, records, await textsOf(s.src), seed);
  evaluated.push({ name: s.name, report });
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

// The judge itself against gold grades, when the records carry graded responses.
const graded = records.filter((r) => r.responses.some((x) => x.grades && Object.keys(x.grades).length > 0));
const judgeMetrics = rm && !a['no-judge'] && graded.length > 0 ? await evaluateJudge(rm, graded) : undefined;
rm?.dispose();

fs.mkdirSync(a.out!, { recursive: true });
fs.writeFileSync(
  path.join(a.out!, 'responses.jsonl'),
  evaluated.flatMap((e) => e.report.responses.map(({ grades: _g, ...r }) => JSON.stringify({ system: e.name, ...r }))).join('\n') + '\n',
);
const { report, charts } = await writeBenchReport(a.out!, {
  title: 'ProMedical-Bench-style evaluation',
  policies: evaluated,
  comparison,
  judge: judgeMetrics,
  healthbench,
  setup: [
    `data: ${a.data} (${a.format}), ${records.length} prompts`,
    `grader: ${a.grader === 'rm' ? `criteria-injected reward model ${a.rm}` : 'provided grades'}`,
    `systems: ${sources.map((s) => s.name).join(' vs ')}`,
    `decoding: ${Number(a.temperature) > 0 ? `sampling, temperature ${a.temperature}${a['top-p'] ? `, top-p ${a['top-p']}` : ''}${a['top-k'] ? `, top-k ${a['top-k']}` : ''}` : 'greedy'}, up to ${a['max-new-tokens']} new tokens`,
    `seed ${seed}`,
  ],
});
const overall = (e: (typeof evaluated)[number]) => Object.fromEntries(['overall_accuracy', 'safety_compliance', 's1', 's2', 's3'].map((m) => [m, e.report.overall[m as 'overall_accuracy']]));
const main = overall(evaluated[0]);
const summary = {
  run_dir: a.out,
  ...Object.fromEntries(Object.entries(main).map(([k, v]) => [k, v.mean])),
  intervals: main,
  ...(evaluated[1] ? { baseline: { name: evaluated[1].name, ...Object.fromEntries(Object.entries(overall(evaluated[1])).map(([k, v]) => [k, v.mean])) } } : {}),
  ...(comparison ? { difference: Object.fromEntries(['overall_accuracy', 'safety_compliance', 's1', 's2', 's3'].map((m) => [m, comparison[m as 'overall_accuracy'].difference])) } : {}),
  ...(healthbench ? { healthbench: healthbench.map((h) => ({ name: h.name, score: h.report.overall.score, std: h.report.overall.std, n: h.report.overall.n })) } : {}),
  ...(judgeMetrics ? { judge: { pairwise_accuracy: judgeMetrics.pairwise_accuracy, pointwise_accuracy: judgeMetrics.pointwise_accuracy, kappa: judgeMetrics.kappa, safety_veto_f1: judgeMetrics.safety_veto_f1 } } : {}),
  report,
  charts,
};
fs.writeFileSync(path.join(a.out!, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
console.log(JSON.stringify(summary));
