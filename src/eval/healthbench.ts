// HealthBench mode (OpenAI simple-evals semantics): each example's score is the points of its met
// rubric items over its positive points (not clipped); a reported score is the mean over examples
// clipped to [0, 1] with the std of 1,000 bootstrap resamples of that clipped mean. Example tags
// (theme:, physician_agreed_category:) take the example's score; rubric tags (axis:, level:,
// cluster:) score the example on that tag's items only, and are dropped for an example whose items
// of that tag have no positive points.
import { gradeValue, type RubricRecord } from '../data/schema.js';
import { Rng } from '../data/rng.js';

export interface HealthBenchItem {
  /** Signed points of the original rubric item. */
  points: number;
  /** Whether the original item was met (for a negative item: the undesirable thing happened). */
  met: boolean;
}

// docs/formulas.md, "HealthBench example score"
/** sum(points of met items) / sum(positive points); NaN when there are no positive points. */
export function healthbenchScore(items: HealthBenchItem[]): number {
  const possible = items.reduce((a, i) => a + (i.points > 0 ? i.points : 0), 0);
  const achieved = items.reduce((a, i) => a + (i.met ? i.points : 0), 0);
  return possible > 0 ? achieved / possible : NaN;
}

/**
 * A response's HealthBench items from an imported record: criteria carry the original signed
 * points, and avoid-criteria (negative points) are met when the original item was NOT met.
 * Grades >= 0.5 count as met. Criteria without points or without a grade are left out.
 */
export function healthbenchItems(record: RubricRecord, responseId: string): HealthBenchItem[] {
  const response = record.responses.find((r) => r.id === responseId);
  if (!response) throw new Error(`record ${record.id} has no response "${responseId}"`);
  const items: HealthBenchItem[] = [];
  for (const c of record.criteria) {
    const g = gradeValue(response.grades?.[c.id]);
    if (c.points === undefined || g === undefined) continue;
    const good = g >= 0.5;
    items.push({ points: c.points, met: c.points < 0 ? !good : good });
  }
  return items;
}

export interface HealthBenchStat {
  /** clip(mean over examples, 0, 1). */
  score: number;
  /** Standard deviation of the clipped mean over bootstrap resamples. */
  std: number;
  n: number;
}

export interface HealthBenchExampleScore {
  recordId: string;
  score: number;
  /** Score per tag (example tags and rubric-item tags). */
  tags: Record<string, number>;
}

export interface HealthBenchReport {
  overall: HealthBenchStat;
  /** Every tag seen, e.g. "axis:accuracy", "theme:emergency_referrals". */
  byTag: Record<string, HealthBenchStat>;
  examples: HealthBenchExampleScore[];
}

/** The example-level tags of an imported HealthBench record (its theme when the tags are gone). */
export function exampleTags(record: RubricRecord): string[] {
  const tags = record.source?.example_tags;
  if (Array.isArray(tags) && tags.every((t) => typeof t === 'string')) return tags as string[];
  return record.category ? [`theme:${record.category}`] : [];
}

/**
 * Scores one response of a record given grades of OUR criteria (criterion id -> grade; >= 0.5 is
 * "met"). Imported negative items are phrased as avoid-criteria, so a met avoid-criterion means the
 * original undesirable item was NOT met. Criteria without points or grade are left out; null when
 * the example has no positive points.
 */
export function healthbenchExample(record: RubricRecord, grades: Record<string, number | boolean | undefined>): HealthBenchExampleScore | null {
  const items: (HealthBenchItem & { tags: string[] })[] = [];
  for (const c of record.criteria) {
    const g = gradeValue(grades[c.id]);
    if (c.points === undefined || g === undefined) continue;
    const good = g >= 0.5;
    items.push({ points: c.points, met: c.points < 0 ? !good : good, tags: c.tags ?? (c.axis ? [`axis:${c.axis}`] : []) });
  }
  const score = healthbenchScore(items);
  if (Number.isNaN(score)) return null;
  const tags: Record<string, number> = {};
  for (const t of exampleTags(record)) tags[t] = score;
  for (const t of new Set(items.flatMap((i) => i.tags))) {
    const s = healthbenchScore(items.filter((i) => i.tags.includes(t)));
    if (!Number.isNaN(s)) tags[t] = s;
  }
  return { recordId: record.id, score, tags };
}

// docs/formulas.md, "HealthBench reported score and bootstrap std"
/** clip(mean, 0, 1) and the population std of the clipped means of `resamples` bootstrap draws. */
export function healthbenchStat(values: number[], opts: { resamples?: number; seed?: number | string } = {}): HealthBenchStat {
  const n = values.length;
  const clippedMean = (sum: number) => Math.min(1, Math.max(0, sum / n));
  if (n === 0) return { score: NaN, std: NaN, n: 0 };
  const B = opts.resamples ?? 1000;
  const rng = new Rng(`healthbench:${opts.seed ?? 0}`);
  const means = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += values[rng.int(n)];
    means[b] = clippedMean(s);
  }
  const mu = means.reduce((a, v) => a + v, 0) / B;
  const std = Math.sqrt(means.reduce((a, v) => a + (v - mu) ** 2, 0) / B);
  return { score: clippedMean(values.reduce((a, v) => a + v, 0)), std, n };
}

/** The report over scored examples: overall and per tag. */
export function healthbenchReport(examples: HealthBenchExampleScore[], seed: number | string = 0): HealthBenchReport {
  const byTag: Record<string, number[]> = {};
  for (const e of examples) for (const [t, s] of Object.entries(e.tags)) (byTag[t] ??= []).push(s);
  return {
    overall: healthbenchStat(examples.map((e) => e.score), { seed }),
    byTag: Object.fromEntries(Object.keys(byTag).sort().map((t) => [t, healthbenchStat(byTag[t], { seed })])),
    examples,
  };
}
