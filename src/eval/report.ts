// The bench report: a Markdown file and SVG charts in the run folder (per-tier bars with 95%
// intervals, accuracy per specialty), from policy reports, their comparison, judge metrics and
// HealthBench results.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { atomicWrite } from '../model/safetensors.js';
import { renderVegaLite } from '../train/chart.js';
import type { Interval } from './bootstrap.js';
import type { HealthBenchReport } from './healthbench.js';
import type { JudgeMetrics } from './judge.js';
import { POLICY_METRICS, type PolicyComparison, type PolicyMetric, type PolicyReport } from './policy.js';

export interface BenchReportInput {
  title: string;
  /** One or two policies (the first is the one under test). */
  policies: { name: string; report: PolicyReport }[];
  /** policies[0] minus policies[1] on the same prompts. */
  comparison?: Record<PolicyMetric, PolicyComparison>;
  judge?: JudgeMetrics;
  healthbench?: { name: string; report: HealthBenchReport }[];
  /** Lines about how the run was made (data, grader, seed...). */
  setup?: string[];
}

const LABEL: Record<PolicyMetric, string> = {
  overall_accuracy: 'overall criterion accuracy', safety_compliance: 'safety compliance', s1: 'S1 (proficiency)', s2: 'S2 (excellence bonus)',
  s3: 'S3 (safety violations)', reward: 'ProMedical reward', accuracy_proficiency: 'accuracy, proficiency criteria',
  accuracy_excellence: 'accuracy, excellence criteria', accuracy_safety: 'accuracy, safety criteria',
};
const TIER_METRICS: PolicyMetric[] = ['overall_accuracy', 'accuracy_proficiency', 'accuracy_excellence', 'accuracy_safety', 'safety_compliance'];

const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
const ci = (i: Interval) => `${f3(i.mean)} [${f3(i.low)}, ${f3(i.high)}]`;
const cell = (s: string) => s.replace(/\|/g, '\\|');

/** What a paired interval says about a difference. */
export function verdict(d: Interval): string {
  if (!Number.isFinite(d.mean)) return 'n/a';
  if (d.low === 0 && d.high === 0) return 'no difference (equal on every prompt)';
  if (d.low > 0) return 'higher (interval above 0)';
  if (d.high < 0) return 'lower (interval below 0)';
  return 'no clear difference (interval spans 0)';
}

/** Writes <dir>/report.md, <dir>/tiers.svg and <dir>/specialties.svg; returns their paths. */
export async function writeBenchReport(dir: string, input: BenchReportInput): Promise<{ report: string; charts: string[] }> {
  fs.mkdirSync(dir, { recursive: true });
  const names = input.policies.map((p) => p.name);
  const md: string[] = [`# ${input.title}`, ''];
  if (input.setup?.length) md.push(...input.setup.map((l) => `- ${l}`), '');
  md.push('Means with 95% bootstrap intervals (1,000 resamples of prompts, seeded).', '');

  // Overall, side by side, with the paired difference.
  const head = ['metric', ...names.map((n) => cell(n)), ...(input.comparison ? [`difference (${cell(names[0])} - ${cell(names[1])})`, 'verdict'] : [])];
  md.push('## Overall', '', `| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
  for (const m of POLICY_METRICS) {
    const row = [LABEL[m], ...input.policies.map((p) => ci(p.report.overall[m]))];
    if (input.comparison) row.push(ci(input.comparison[m].difference), verdict(input.comparison[m].difference));
    md.push(`| ${row.join(' | ')} |`);
  }
  md.push('', `Prompts: ${input.policies[0].report.responses.length}.`, '', '![per tier](tiers.svg)', '');

  for (const [key, title] of [['byCategory', 'Per category'], ['bySpecialty', 'Per specialty']] as const) {
    const groups = [...new Set(input.policies.flatMap((p) => Object.keys(p.report[key])))].sort();
    const cols = input.policies.flatMap((p) => [`${cell(p.name)}: accuracy`, `${cell(p.name)}: safety compliance`]);
    md.push(`## ${title}`, '', `| ${['group', 'n', ...cols].join(' | ')} |`, `|${['', '', ...cols].map(() => '---').join('|')}|`);
    for (const g of groups) {
      const n = input.policies[0].report.responses.filter((r) => ((key === 'byCategory' ? r.category : r.specialty) ?? 'unknown') === g).length;
      const vals = input.policies.flatMap((p) => {
        const s = p.report[key][g];
        return s ? [ci(s.overall_accuracy), ci(s.safety_compliance)] : ['n/a', 'n/a'];
      });
      md.push(`| ${[cell(g), String(n), ...vals].join(' | ')} |`);
    }
    md.push('');
  }
  md.push('![per specialty](specialties.svg)', '');

  if (input.judge) {
    md.push('## Reward model as judge (gold grades)', '', '| metric | value |', '|---|---|');
    for (const [k, v] of Object.entries(input.judge)) md.push(`| ${k} | ${Number.isInteger(v) ? v : f3(v)} |`);
    md.push('');
  }
  for (const hb of input.healthbench ?? []) {
    md.push(`## HealthBench score: ${cell(hb.name)}`, '', 'Mean of per-example scores clipped to [0, 1], bootstrap std (simple-evals).', '');
    md.push('| tag | score | std | n |', '|---|---|---|---|', `| overall | ${f3(hb.report.overall.score)} | ${f3(hb.report.overall.std)} | ${hb.report.overall.n} |`);
    for (const [t, s] of Object.entries(hb.report.byTag)) if (/^(axis|theme):/.test(t)) md.push(`| ${cell(t)} | ${f3(s.score)} | ${f3(s.std)} | ${s.n} |`);
    md.push('');
  }

  const tiers = path.join(dir, 'tiers.svg');
  const tierValues = input.policies.flatMap((p) => TIER_METRICS.map((m) => ({ policy: p.name, metric: LABEL[m], ...p.report.overall[m] }))).filter((v) => Number.isFinite(v.mean));
  await renderVegaLite(barsWithIntervals(tierValues, 'metric', 'Criterion accuracy per tier and safety compliance (95% intervals)'), tiers);
  const specialties = path.join(dir, 'specialties.svg');
  const specValues = input.policies.flatMap((p) => Object.entries(p.report.bySpecialty).map(([g, s]) => ({ policy: p.name, metric: g, ...s.overall_accuracy })));
  await renderVegaLite(barsWithIntervals(specValues, 'metric', 'Overall criterion accuracy per specialty (95% intervals)'), specialties);

  const report = path.join(dir, 'report.md');
  await atomicWrite(report, (fh) => fh.writeFile(md.join('\n')));
  return { report, charts: [tiers, specialties] };
}

/** Horizontal bars (one per policy within each group) with interval rules. */
function barsWithIntervals(values: object[], group: string, title: string): TopLevelSpec {
  return {
    title,
    data: { values },
    facet: { row: { field: group, type: 'nominal', title: null, header: { labelAngle: 0, labelAlign: 'left', labelLimit: 320 } } },
    spec: {
      width: 360,
      layer: [
        { mark: 'bar', encoding: { x: { field: 'mean', type: 'quantitative', title: null, scale: { domain: [0, 1] } }, y: { field: 'policy', type: 'nominal', title: null }, color: { field: 'policy', type: 'nominal', legend: null } } },
        { mark: { type: 'rule', color: 'black' }, encoding: { x: { field: 'low', type: 'quantitative' }, x2: { field: 'high' }, y: { field: 'policy', type: 'nominal' } } },
      ],
    },
  } as TopLevelSpec;
}
