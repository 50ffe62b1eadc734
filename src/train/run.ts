// A training run: the loop pieces both trainers share. Each step accumulates gradients over
// micro-batches, clips them, checks them, updates with AdamW on the schedule, logs a metrics row
// and checkpoints when due; `resume` continues from the newest checkpoint exactly.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Qwen3ForCausalLM } from '../model/qwen3.js';
import { AdamW } from './adamw.js';
import { renderChart } from './chart.js';
import { checkpointsDir, latestCheckpoint, listCheckpoints, restoreCheckpoint, saveCheckpoint, type TrainerState } from './run_state.js';
import { clipByGlobalNorm } from './clip.js';
import { MetricsLog, Progress, type MetricsRow } from './metrics.js';
import { Rng } from '../data/rng.js';
import { lrSchedule, type ScheduleOptions } from './schedule.js';

export interface TrainingRunOptions {
  runDir: string;
  model: Qwen3ForCausalLM;
  /** Trainable tensors outside the model (e.g. reward heads), by name. */
  extra?: Map<string, tf.Variable>;
  /** Peak learning rate. */
  lr: number;
  totalSteps: number;
  /** Default linear decay without warmup (transformers' default). */
  schedule?: Omit<ScheduleOptions, 'totalSteps'>;
  /** AdamW decoupled weight decay on rank >= 2 tensors (default 0, as transformers). */
  weightDecay?: number;
  betas?: [number, number];
  /** Clip the global gradient norm to this (default 1.0, as transformers); 0 disables. */
  maxGradNorm?: number;
  /** Checkpoint every this many steps (0: only at the end). */
  saveEvery?: number;
  /** Checkpoints to keep (default 2). */
  keepLast?: number;
  /** A NaN/Inf loss or gradient norm stops the run ('stop', default) or skips the update ('skip'). */
  onNonFinite?: 'stop' | 'skip';
  seed: number | string;
  /** Written to <runDir>/config.json: how the run was made. */
  config?: Record<string, unknown>;
  /** Continue from the newest checkpoint in runDir (an error if there is none). */
  resume?: boolean;
  /** No progress bar. */
  quiet?: boolean;
  label?: string;
}

export interface MicroBatch {
  /** The micro-batch's loss (built inside the gradient tape). */
  loss: () => tf.Scalar;
  /** Its share of the step's loss (default 1 / number of micro-batches; e.g. its share of tokens). */
  weight?: number;
}

export interface StepResult {
  step: number;
  loss: number;
  gradNorm: number;
  lr: number;
  skipped: boolean;
}

export class NonFiniteError extends Error {
  override readonly name = 'NonFiniteError';
}

const MAX_CONSECUTIVE_SKIPS = 10;

export class TrainingRun {
  readonly opts: TrainingRunOptions;
  readonly metrics: MetricsLog;
  readonly optimizer: AdamW;
  rng: Rng;
  /** Optimizer steps done so far. */
  step: number;
  /** The trainer's data position, saved with each checkpoint (restored on resume). */
  data: unknown;
  private readonly params: Map<string, tf.Variable>;
  private readonly schedule: (step: number) => number;
  private readonly progress: Progress;
  private lastSaved = -1;
  private skipsInARow = 0;

  private constructor(opts: TrainingRunOptions, state: TrainerState | null) {
    this.opts = opts;
    this.metrics = new MetricsLog(opts.runDir);
    this.params = new Map([...opts.model.trainableParameters(), ...(opts.extra ?? new Map())]);
    this.optimizer = new AdamW(this.params, { weightDecay: opts.weightDecay ?? 0, betas: opts.betas });
    this.schedule = lrSchedule({ type: 'linear', warmupSteps: 0, ...opts.schedule, totalSteps: opts.totalSteps } as ScheduleOptions);
    this.step = state?.step ?? 0;
    this.rng = new Rng(opts.seed, state?.rng);
    this.data = state?.data;
    this.progress = new Progress(opts.totalSteps, this.step, { label: opts.label, quiet: opts.quiet });
  }

  /** Starts a run in opts.runDir, or with `resume` picks up its newest checkpoint. */
  static async start(opts: TrainingRunOptions): Promise<TrainingRun> {
    fs.mkdirSync(opts.runDir, { recursive: true });
    if (!opts.resume) {
      // A new run in a used folder starts clean: an old run's checkpoints would otherwise be taken
      // for this run's by a later resume.
      if (listCheckpoints(opts.runDir).length > 0 && !opts.quiet) {
        process.stderr.write(`[promedical] ${opts.runDir}: starting a new run; the previous run's checkpoints and metrics are removed (use resume to continue it)\n`);
      }
      fs.rmSync(checkpointsDir(opts.runDir), { recursive: true, force: true });
      fs.rmSync(path.join(opts.runDir, 'metrics.jsonl'), { force: true });
      fs.writeFileSync(path.join(opts.runDir, 'config.json'), JSON.stringify(opts.config ?? {}, null, 2) + '\n');
      return new TrainingRun(opts, null);
    }
    const ckpt = latestCheckpoint(opts.runDir);
    if (!ckpt) throw new Error(`${opts.runDir}: --resume given but the run has no checkpoint`);
    // The optimizer is created by the constructor; its state is loaded here.
    const run = new TrainingRun(opts, null);
    const state = restoreCheckpoint(ckpt, { model: opts.model, extra: opts.extra, optimizer: run.optimizer });
    run.step = state.step;
    run.data = state.data;
    run.rng = new Rng(opts.seed, state.rng);
    run.lastSaved = state.step;
    run.metrics.truncateAfter(state.step);
    run.progress.update(state.step, 'resumed');
    return run;
  }

  get done(): boolean {
    return this.step >= this.opts.totalSteps;
  }

  /** The learning rate of the next step. */
  get lr(): number {
    return this.opts.lr * this.schedule(this.step);
  }

  /**
   * One optimizer step over `microBatches` (gradient accumulation). `metrics` are extra values
   * for this step's row (e.g. accuracy); `tokens` gives tokens/s.
   */
  async trainStep(microBatches: MicroBatch[], info: { tokens?: number; metrics?: Record<string, number> } = {}): Promise<StepResult> {
    if (microBatches.length === 0) throw new Error('trainStep: no micro-batches');
    const t0 = performance.now();
    const lr = this.lr;
    const names = [...this.params.keys()];
    const vars = names.map((n) => this.params.get(n)!);
    let grads = new Map<string, tf.Tensor>();
    let loss: tf.Scalar = tf.scalar(0);
    for (const mb of microBatches) {
      const w = mb.weight ?? 1 / microBatches.length;
      const prev = { grads, loss };
      tf.tidy(() => {
        const { value, grads: g } = tf.variableGrads(() => mb.loss().mul(w) as tf.Scalar, vars);
        const next = new Map<string, tf.Tensor>();
        for (const n of names) {
          const gi = g[this.params.get(n)!.name];
          if (!gi) continue; // not on the loss's path (e.g. an unused head)
          next.set(n, tf.keep(prev.grads.has(n) ? prev.grads.get(n)!.add(gi) : gi));
        }
        for (const n of prev.grads.keys()) if (!next.has(n)) next.set(n, tf.keep(prev.grads.get(n)!.clone()));
        grads = next;
        loss = tf.keep(prev.loss.add(value));
      });
      tf.dispose([...prev.grads.values(), prev.loss]);
    }
    const maxNorm = this.opts.maxGradNorm ?? 1.0;
    const clipped = clipByGlobalNorm(grads, maxNorm > 0 ? maxNorm : Infinity);
    // The one host read of the step: loss and norm for the guard and the log.
    const [lossValue, normValue] = (await Promise.all([loss.data(), clipped.norm.data()])).map((a) => a[0]);
    const finite = Number.isFinite(lossValue) && Number.isFinite(normValue);
    if (finite) {
      this.optimizer.step(maxNorm > 0 ? clipped.grads : grads, lr);
      this.skipsInARow = 0;
    }
    tf.dispose([...grads.values(), ...clipped.grads.values(), clipped.norm, loss]);
    if (!finite) {
      const what = `loss ${lossValue}, gradient norm ${normValue}`;
      if ((this.opts.onNonFinite ?? 'stop') === 'stop' || ++this.skipsInARow > MAX_CONSECUTIVE_SKIPS) {
        this.progress.stop();
        const last = latestCheckpoint(this.opts.runDir);
        throw new NonFiniteError(
          `step ${this.step + 1}: ${what}; training stopped` +
            (this.skipsInARow > MAX_CONSECUTIVE_SKIPS ? ` after ${MAX_CONSECUTIVE_SKIPS} skipped steps in a row` : '') +
            `. Last good checkpoint: ${last ?? 'none saved yet'}`,
        );
      }
    }
    this.step += 1;
    const seconds = (performance.now() - t0) / 1000;
    const row: MetricsRow = { step: this.step, lr, loss: lossValue, grad_norm: normValue, ...info.metrics, seconds };
    if (info.tokens) row.tokens_per_s = info.tokens / seconds;
    if (!finite) row.skipped = true;
    this.metrics.append(row);
    this.progress.update(this.step, `loss ${lossValue.toFixed(4)}`);
    const every = this.opts.saveEvery ?? 0;
    if (every > 0 && this.step % every === 0) await this.checkpoint();
    return { step: this.step, loss: lossValue, gradNorm: normValue, lr, skipped: !finite };
  }

  /** Saves a checkpoint of the current step (model or adapters, extras, optimizer, state). */
  async checkpoint(): Promise<string> {
    const dir = await saveCheckpoint(
      this.opts.runDir,
      { model: this.opts.model, extra: this.opts.extra, optimizer: this.optimizer, state: { step: this.step, rng: this.rng.state(), data: this.data } },
      this.opts.keepLast ?? 2,
    );
    this.lastSaved = this.step;
    return dir;
  }

  /** Final checkpoint (unless this step is saved already) and the chart (of `metrics`, or of
   * every curve-like key). */
  async finish(opts: { title?: string; metrics?: string[] } = {}): Promise<{ runDir: string; checkpoint: string; chart: string }> {
    this.progress.stop();
    const checkpoint = this.lastSaved === this.step ? latestCheckpoint(this.opts.runDir)! : await this.checkpoint();
    const chart = path.join(this.opts.runDir, 'chart.svg');
    await renderChart(this.metrics.rows(), chart, { title: opts.title ?? this.opts.label, metrics: opts.metrics });
    return { runDir: this.opts.runDir, checkpoint, chart };
  }

  dispose(): void {
    this.progress.stop();
    this.optimizer.dispose();
  }
}
