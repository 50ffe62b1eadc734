// A training run: the loop pieces both trainers share. Each step accumulates gradients over
// micro-batches, clips them, checks them, updates with AdamW on the schedule, logs a metrics row
// and checkpoints when due; `resume` continues from the newest checkpoint exactly.
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Qwen3ForCausalLM } from '../model/qwen3.js';
import { AdamW } from './adamw.js';
import { renderChart } from './chart.js';
import { ensureBackend } from '../ops/backend.js';
import { assertFiniteParameters, latestCheckpoint, NonFiniteError, openRunDir, restoreCheckpoint, saveCheckpoint } from './run_state.js';
import { clipByGlobalNorm } from './clip.js';
import { MetricsLog, Progress, type MetricsRow } from './metrics.js';
import { Rng } from '../data/rng.js';
import { lrSchedule, type ScheduleOptions } from './schedule.js';
import { resumableFields, storedConfig, type ConfigKind, type TrainingArgs } from './config.js';

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
  /** Continue from the newest checkpoint in runDir (an error if there is none, or if `config`
   * differs from the saved one outside `resumable`). */
  resume?: boolean;
  /** A new run may replace a previous run in runDir (otherwise a used runDir is an error). */
  overwrite?: boolean;
  /** Config keys that may change on resume. */
  resumable?: Iterable<string>;
  /** The caller opened runDir already (openRunDir), e.g. to train starting points inside it. */
  prepared?: boolean;
  /** A progress line every N steps when stderr is not a terminal (default 10). */
  loggingSteps?: number;
  /** No progress bar or lines. */
  quiet?: boolean;
  label?: string;
}

/** The run options a validated config gives (everything but the model, extras and label). */
export function runOptions(kind: ConfigKind, c: TrainingArgs, opts: { prepared?: boolean; quiet?: boolean } = {}): Omit<TrainingRunOptions, 'model' | 'extra' | 'label'> {
  return {
    runDir: c.out,
    lr: c.lr,
    totalSteps: c.steps,
    schedule: { type: c.lr_scheduler, warmupSteps: Math.round(c.warmup_ratio * c.steps) },
    weightDecay: c.weight_decay,
    maxGradNorm: c.max_grad_norm,
    saveEvery: c.save_every,
    keepLast: c.keep_last,
    loggingSteps: c.logging_steps,
    seed: c.seed,
    config: storedConfig(c) as unknown as Record<string, unknown>,
    resume: c.resume,
    overwrite: c.overwrite,
    resumable: resumableFields(kind),
    prepared: opts.prepared,
    quiet: opts.quiet,
  };
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

export { NonFiniteError };

/** Ctrl-C (SIGINT) stopped the run at a step boundary, after saving a checkpoint there. */
export class InterruptedError extends Error {
  override readonly name = 'InterruptedError';
  constructor(readonly step: number, readonly checkpoint: string) {
    super(`interrupted at step ${step} (checkpoint ${checkpoint}): resume with --resume`);
  }
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
  private progress: Progress;
  private lastSaved = -1;
  private skipsInARow = 0;
  private interrupted = false;
  private readonly onSigint = () => {
    if (this.interrupted) process.exit(130); // a second Ctrl-C: stop now
    this.interrupted = true;
    this.progress.stop();
    process.stderr.write(`[promedical] interrupt: finishing step ${this.step + 1}, then saving a checkpoint (Ctrl-C again quits at once)\n`);
  };

  private constructor(opts: TrainingRunOptions) {
    this.opts = opts;
    this.metrics = new MetricsLog(opts.runDir);
    this.params = new Map([...opts.model.trainableParameters(), ...(opts.extra ?? new Map())]);
    this.optimizer = new AdamW(this.params, { weightDecay: opts.weightDecay ?? 0, betas: opts.betas });
    this.schedule = lrSchedule({ type: 'linear', warmupSteps: 0, ...opts.schedule, totalSteps: opts.totalSteps } as ScheduleOptions);
    this.step = 0;
    this.rng = new Rng(opts.seed);
    this.progress = new Progress(opts.totalSteps, 0, { label: opts.label, quiet: opts.quiet, every: opts.loggingSteps });
    process.on('SIGINT', this.onSigint);
  }

  /** Starts a run in opts.runDir, or with `resume` picks up its newest checkpoint. */
  static async start(opts: TrainingRunOptions): Promise<TrainingRun> {
    await ensureBackend();
    if (!opts.prepared) openRunDir(opts.runDir, { config: opts.config ?? {}, resume: opts.resume, overwrite: opts.overwrite, resumable: opts.resumable });
    if (!opts.resume) return new TrainingRun(opts);
    const ckpt = latestCheckpoint(opts.runDir);
    if (!ckpt) throw new Error(`${opts.runDir}: nothing to resume (no checkpoint saved yet)`);
    // The optimizer is created by the constructor; its state is loaded here.
    const run = new TrainingRun(opts);
    const state = restoreCheckpoint(ckpt, { model: opts.model, extra: opts.extra, optimizer: run.optimizer });
    run.step = state.step;
    run.data = state.data;
    run.rng = new Rng(opts.seed, state.rng);
    run.lastSaved = state.step;
    run.metrics.truncateAfter(state.step);
    if (!opts.quiet) process.stderr.write(`[promedical] resuming from step ${state.step} of ${opts.runDir} (${path.basename(ckpt)})\n`);
    run.progress.stop();
    run.progress = new Progress(opts.totalSteps, state.step, { label: opts.label, quiet: opts.quiet, every: opts.loggingSteps });
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
   * for this step's row (e.g. accuracy); `tokens` gives tokens/s. `after` runs once the update is
   * done (`step` already counts it) and before the row is logged and a checkpoint written: what it
   * changes of the trainer's state (`data`) is in that checkpoint, what it returns in that row.
   */
  async trainStep(microBatches: MicroBatch[], info: { tokens?: number; metrics?: Record<string, number>; after?: () => Promise<Record<string, number> | void> } = {}): Promise<StepResult> {
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
    const later = (await info.after?.()) ?? {};
    const seconds = (performance.now() - t0) / 1000;
    const row: MetricsRow = { step: this.step, lr, loss: lossValue, grad_norm: normValue, ...info.metrics, ...later, seconds };
    if (info.tokens) row.tokens_per_s = info.tokens / seconds;
    if (!finite) row.skipped = true;
    this.metrics.append(row);
    this.progress.update(this.step, { loss: lossValue, lr, tokensPerS: row.tokens_per_s as number | undefined });
    const every = this.opts.saveEvery ?? 0;
    if (every > 0 && this.step % every === 0) await this.checkpoint();
    if (this.interrupted && !this.done) {
      const dir = this.lastSaved === this.step ? latestCheckpoint(this.opts.runDir)! : await this.checkpoint();
      this.dispose();
      throw new InterruptedError(this.step, dir);
    }
    return { step: this.step, loss: lossValue, gradNorm: normValue, lr, skipped: !finite };
  }

  /** Saves a checkpoint of the current step (model or adapters, extras, optimizer, state); never
   * one with a non-finite parameter (NonFiniteError naming it and the step instead). */
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
    process.off('SIGINT', this.onSigint);
    await this.assertFinite();
    const checkpoint = this.lastSaved === this.step ? latestCheckpoint(this.opts.runDir)! : await this.checkpoint();
    const chart = path.join(this.opts.runDir, 'chart.svg');
    await renderChart(this.metrics.rows(), chart, { title: opts.title ?? this.opts.label, metrics: opts.metrics });
    return { runDir: this.opts.runDir, checkpoint, chart };
  }

  /** Throws NonFiniteError when a trained tensor holds NaN or Inf. */
  async assertFinite(): Promise<void> {
    try {
      await assertFiniteParameters(this.params, this.step, this.opts.runDir);
    } catch (err) {
      this.progress.stop();
      throw err;
    }
  }

  dispose(): void {
    process.off('SIGINT', this.onSigint);
    this.progress.stop();
    this.optimizer.dispose();
  }
}
