// A review round's report, from the folded journal: how often the drafted criteria passed review
// unedited (the paper's expert pass rate, 96.4%), edit and reject rates per tier, agreement
// between each pair of reviewers on the items both finished (Cohen's kappa), and time per item.
import { cohensKappa } from '../eval/metrics.js';
import { TIERS, type Tier } from '../data/schema.js';
import type { Action, Folded, ItemState } from './journal.js';
import type { DraftItem } from './items.js';

export interface Rates {
  /** Criteria with a decision. */
  decided: number;
  accepted: number;
  edited: number;
  rejected: number;
  /** accepted / decided (criteria accepted unedited); null when nothing was decided. */
  pass_rate: number | null;
  edit_rate: number | null;
  reject_rate: number | null;
}

export interface Kappa {
  /** Judgements both reviewers made. */
  n: number;
  /** Share of them on which they agree. */
  observed: number | null;
  /** Cohen's kappa; null when undefined (no pair, or one label throughout). */
  kappa: number | null;
}

export interface PairAgreement {
  reviewers: [string, string];
  /** Items both reviewers finished. */
  shared_items: number;
  /** accept / edit / reject on the same (item, criterion). */
  decisions: Kappa;
  /** met / not met on the same (item, candidate, criterion). */
  grades: Kappa;
}

export interface RoundReport {
  round: number;
  /** Items in the round. */
  items: number;
  reviewers: string[];
  /** reviewer -> items finished in this round. */
  items_done: Record<string, number>;
  /** Every reviewer's latest decisions on the round's criteria, together. */
  overall: Rates;
  by_tier: Record<Tier, Rates>;
  agreement: PairAgreement[];
  /** Seconds per finished (reviewer, item): the sum of its visits' times. */
  time_per_item: { n: number; mean_s: number | null; median_s: number | null };
}

/** Two raters' agreement on the same units: the share they agree on and Cohen's kappa
 * (docs/formulas.md); kappa is null where it is undefined (no units, or one label throughout). */
export function raterAgreement(pairs: readonly (readonly [string, string])[]): Kappa {
  const n = pairs.length;
  if (n === 0) return { n, observed: null, kappa: null };
  const kappa = cohensKappa(pairs.map(([a]) => a), pairs.map(([, b]) => b));
  return { n, observed: pairs.filter(([a, b]) => a === b).length / n, kappa: Number.isNaN(kappa) ? null : kappa };
}

function rates(actions: Action[]): Rates {
  const count = (x: Action) => actions.filter((a) => a === x).length;
  const decided = actions.length;
  const share = (k: number) => (decided === 0 ? null : k / decided);
  const [accepted, edited, rejected] = [count('accept'), count('edit'), count('reject')];
  return { decided, accepted, edited, rejected, pass_rate: share(accepted), edit_rate: share(edited), reject_rate: share(rejected) };
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The report of round `round`, whose items are `items` (in drafts order). */
export function roundReport(round: number, items: readonly DraftItem[], folded: Folded): RoundReport {
  const reviewers = [...folded.keys()].filter((r) => items.some((it) => folded.get(r)!.has(it.id))).sort();
  const stateOf = (r: string, id: string): ItemState | undefined => folded.get(r)?.get(id);
  const all: Action[] = [];
  const tierActions = Object.fromEntries(TIERS.map((t) => [t, [] as Action[]])) as Record<Tier, Action[]>;
  const itemsDone: Record<string, number> = {};
  const seconds: number[] = [];
  for (const r of reviewers) {
    itemsDone[r] = 0;
    for (const it of items) {
      const s = stateOf(r, it.id);
      if (!s) continue;
      // Rates are per drafted tier: how well the drafter did on each tier.
      for (const c of it.criteria) {
        const d = s.decisions.get(c.id);
        if (!d) continue;
        all.push(d.action);
        tierActions[c.tier].push(d.action);
      }
      if (s.done.length > 0) {
        itemsDone[r]++;
        seconds.push(s.done.reduce((sum, e) => sum + e.seconds, 0));
      }
    }
  }
  const agreement: PairAgreement[] = [];
  for (let i = 0; i < reviewers.length; i++) {
    for (let j = i + 1; j < reviewers.length; j++) {
      const [ra, rb] = [reviewers[i], reviewers[j]];
      const decisions: [string, string][] = [];
      const grades: [string, string][] = [];
      let shared = 0;
      for (const it of items) {
        const [sa, sb] = [stateOf(ra, it.id), stateOf(rb, it.id)];
        if (!sa?.done.length || !sb?.done.length) continue;
        shared++;
        for (const c of it.criteria) {
          const [da, db] = [sa.decisions.get(c.id), sb.decisions.get(c.id)];
          if (da && db) decisions.push([da.action, db.action]);
          for (const cand of it.candidates) {
            const [ga, gb] = [sa.grades.get(cand.id)?.get(c.id), sb.grades.get(cand.id)?.get(c.id)];
            if (ga && gb) grades.push([String(ga.met), String(gb.met)]);
          }
        }
      }
      agreement.push({ reviewers: [ra, rb], shared_items: shared, decisions: raterAgreement(decisions), grades: raterAgreement(grades) });
    }
  }
  return {
    round,
    items: items.length,
    reviewers,
    items_done: itemsDone,
    overall: rates(all),
    by_tier: Object.fromEntries(TIERS.map((t) => [t, rates(tierActions[t])])) as Record<Tier, Rates>,
    agreement,
    time_per_item: { n: seconds.length, mean_s: seconds.length ? seconds.reduce((p, q) => p + q, 0) / seconds.length : null, median_s: median(seconds) },
  };
}
