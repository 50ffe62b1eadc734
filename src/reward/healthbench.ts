// HealthBench scoring (OpenAI simple-evals): per example, the points of the met rubric items
// (negative items included) over the sum of positive points; not clipped per example.
import type { RubricRecord } from '../data/schema.js';
import { gradeValue } from '../data/schema.js';

export interface HealthBenchItem {
  /** Signed points of the original rubric item. */
  points: number;
  /** Whether the original item was met (for a negative item: the undesirable thing happened). */
  met: boolean;
}

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
