// Training curves as an SVG (vega-lite compiled to vega, rendered headless without a canvas).
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { atomicWrite } from '../model/safetensors.js';
import type { MetricsRow } from './metrics.js';

/** Curves worth a panel, in display order, when a run logs them. */
const PREFERRED = /^(loss|eval_loss|reward|reward_std|kl|accuracy|pairwise_accuracy|pointwise_accuracy|entropy|grad_norm|lr)$|accuracy|reward|^kl/;

/**
 * One panel per metric against step (each with its own y scale). `metrics` defaults to every
 * numeric key that looks like a training curve.
 */
export async function renderChart(rows: MetricsRow[], file: string, opts: { title?: string; metrics?: string[] } = {}): Promise<string[]> {
  const keys = opts.metrics ?? [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => k !== 'step' && PREFERRED.test(k) && rows.some((r) => typeof r[k] === 'number' && Number.isFinite(r[k])));
  const values = rows.flatMap((r) => keys.filter((k) => typeof r[k] === 'number' && Number.isFinite(r[k] as number)).map((k) => ({ step: r.step, metric: k, value: r[k] })));
  const spec: vl.TopLevelSpec = {
    title: opts.title ?? '',
    data: { values },
    facet: { row: { field: 'metric', type: 'nominal', sort: keys, title: null } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 520,
      height: 120,
      mark: { type: 'line', point: values.length < 200 },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'step' },
        y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false } },
      },
    },
  };
  await renderVegaLite(spec, file);
  return keys;
}

/** Renders any vega-lite spec to an SVG file (written atomically). */
export async function renderVegaLite(spec: vl.TopLevelSpec, file: string): Promise<void> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  await atomicWrite(file, (fh) => fh.writeFile(svg));
}
