// metrics.jsonl (one object per step) and a progress bar on stderr.
import * as fs from 'node:fs';
import * as path from 'node:path';
import cliProgress from 'cli-progress';

export type MetricsRow = { step: number } & Record<string, number | boolean | string | null>;

export class MetricsLog {
  readonly file: string;

  constructor(runDir: string) {
    fs.mkdirSync(runDir, { recursive: true });
    this.file = path.join(runDir, 'metrics.jsonl');
  }

  append(row: MetricsRow): void {
    fs.appendFileSync(this.file, JSON.stringify(row) + '\n');
  }

  rows(): MetricsRow[] {
    if (!fs.existsSync(this.file)) return [];
    return fs
      .readFileSync(this.file, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l, i) => {
        try {
          return JSON.parse(l) as MetricsRow;
        } catch {
          throw new Error(`${this.file}:${i + 1}: not a JSON object`);
        }
      });
  }

  /** Drops rows after `step` (a resumed run rewrites them). */
  truncateAfter(step: number): void {
    const keep = this.rows().filter((r) => r.step <= step);
    fs.writeFileSync(this.file, keep.map((r) => JSON.stringify(r) + '\n').join(''));
  }
}

/**
 * How each curve moved: per key, the mean over the first and over the last fifth (at least one
 * row) of the rows where that key is a number, in row order. Keys no row has as a number are left
 * out. A single such row is both the first and the last fifth.
 */
export function curveSummary(rows: MetricsRow[], keys: string[]): Record<string, { first: number; last: number }> {
  const out: Record<string, { first: number; last: number }> = {};
  for (const key of keys) {
    const values = rows.map((r) => r[key]).filter((v): v is number => typeof v === 'number');
    if (values.length === 0) continue;
    const fifth = Math.max(1, Math.floor(values.length / 5));
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    out[key] = { first: mean(values.slice(0, fifth)), last: mean(values.slice(-fifth)) };
  }
  return out;
}

/** What a progress update shows besides the step. */
export interface ProgressInfo {
  loss?: number;
  lr?: number;
  tokensPerS?: number;
}

/**
 * Progress on stderr: a bar with ETA on a terminal; elsewhere (CI, nohup, a log file) one line
 * every `every` steps (default 10) and at the last step: step/total, loss, lr, tokens/s, ETA.
 * Silent when quiet.
 */
export class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private readonly lines: boolean;
  private readonly every: number;
  private readonly label: string;
  private readonly t0 = performance.now();
  private readonly first: number;

  constructor(private readonly total: number, start: number, opts: { label?: string; quiet?: boolean; every?: number } = {}) {
    this.label = opts.label ?? 'train';
    this.every = opts.every ?? 10;
    this.first = start;
    this.lines = !opts.quiet && !process.stderr.isTTY;
    if (opts.quiet || !process.stderr.isTTY) return;
    this.bar = new cliProgress.SingleBar(
      {
        format: `${this.label} |{bar}| {value}/{total} steps | {info} | ETA {eta_formatted}`,
        stream: process.stderr,
        hideCursor: true,
        etaBuffer: 20,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(total, start, { info: '' });
  }

  update(step: number, info: ProgressInfo): void {
    const parts = [
      info.loss !== undefined ? `loss ${info.loss.toFixed(4)}` : '',
      info.lr !== undefined ? `lr ${info.lr.toExponential(2)}` : '',
      info.tokensPerS !== undefined ? `${info.tokensPerS.toFixed(0)} tok/s` : '',
    ].filter(Boolean);
    this.bar?.update(step, { info: parts.join(' | ') });
    if (!this.lines || step === this.first || (step % this.every !== 0 && step !== this.total)) return;
    const perStep = (performance.now() - this.t0) / 1000 / (step - this.first);
    const eta = formatSeconds(perStep * (this.total - step));
    process.stderr.write(`[${this.label}] step ${step}/${this.total} | ${parts.join(' | ')} | ETA ${eta}\n`);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.round(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}
