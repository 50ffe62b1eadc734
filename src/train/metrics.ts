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

/** A progress bar with ETA on stderr; silent when stderr is not a terminal or when quiet. */
export class Progress {
  private bar: cliProgress.SingleBar | null = null;

  constructor(total: number, start: number, opts: { label?: string; quiet?: boolean } = {}) {
    if (opts.quiet || !process.stderr.isTTY) return;
    this.bar = new cliProgress.SingleBar(
      {
        format: `${opts.label ?? 'train'} |{bar}| {value}/{total} steps | {info} | ETA {eta_formatted}`,
        stream: process.stderr,
        hideCursor: true,
        etaBuffer: 20,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(total, start, { info: '' });
  }

  update(step: number, info: string): void {
    this.bar?.update(step, { info });
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
