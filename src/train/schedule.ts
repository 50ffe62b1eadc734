// Learning-rate schedules with the formulas of Hugging Face's get_scheduler (a multiplier of the
// base learning rate at each optimizer step, counted from 0).

export type ScheduleType = 'constant' | 'constant_with_warmup' | 'linear' | 'cosine';

export interface ScheduleOptions {
  type: ScheduleType;
  warmupSteps?: number;
  /** Needed by linear and cosine. */
  totalSteps?: number;
  /** Cosine waves over the decay (default 0.5: one half-wave from 1 down to 0). */
  numCycles?: number;
}

/** step -> multiplier in [0, 1]. */
export function lrSchedule(opts: ScheduleOptions): (step: number) => number {
  const warmup = opts.warmupSteps ?? 0;
  const total = opts.totalSteps ?? 0;
  const cycles = opts.numCycles ?? 0.5;
  if ((opts.type === 'linear' || opts.type === 'cosine') && !(total > 0)) {
    throw new Error(`the ${opts.type} schedule needs totalSteps > 0`);
  }
  const warm = (step: number) => step / Math.max(1, warmup);
  switch (opts.type) {
    case 'constant':
      return () => 1;
    case 'constant_with_warmup':
      return (step) => (step < warmup ? warm(step) : 1);
    case 'linear':
      return (step) => (step < warmup ? warm(step) : Math.max(0, (total - step) / Math.max(1, total - warmup)));
    case 'cosine':
      return (step) => {
        if (step < warmup) return warm(step);
        const progress = (step - warmup) / Math.max(1, total - warmup);
        return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * cycles * 2 * progress)));
      };
    default:
      throw new Error(`unknown schedule "${String((opts as { type: unknown }).type)}"`);
  }
}
