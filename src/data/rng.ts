// A seeded random stream whose state can be saved and restored: data order, sampling, resume.
import seedrandom from 'seedrandom';

export type RngState = object;

export class Rng {
  private prng: seedrandom.StatefulPRNG<seedrandom.State.Arc4>;

  constructor(seed: string | number, state?: RngState) {
    this.prng = state
      ? seedrandom('', { state: state as seedrandom.State.Arc4 })
      : seedrandom(String(seed), { state: true });
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.prng();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.prng() * n);
  }

  /** A shuffled copy (Fisher-Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  state(): RngState {
    return this.prng.state();
  }
}

/** Where a data loader stands: the epoch, and the index into that epoch's shuffled order. */
export interface EpochPosition {
  epoch: number;
  index: number;
}

/**
 * Draws item indices epoch by epoch, each epoch in its own shuffled order derived from
 * (key, epoch): a resumed run needs only the position to continue exactly where it stopped.
 */
export class EpochSampler {
  private pos: EpochPosition;
  private order: number[];

  constructor(
    private readonly size: number,
    private readonly key: string,
    position: EpochPosition = { epoch: 0, index: 0 },
  ) {
    if (size <= 0) throw new Error('EpochSampler: nothing to sample from');
    this.pos = { ...position };
    this.order = this.orderOf(this.pos.epoch);
  }

  private orderOf(epoch: number): number[] {
    return new Rng(`${this.key}:${epoch}`).shuffle(Array.from({ length: this.size }, (_, i) => i));
  }

  /** The next n indices, moving into new epochs as needed. */
  take(n: number): number[] {
    const out: number[] = [];
    while (out.length < n) {
      if (this.pos.index >= this.order.length) {
        this.pos = { epoch: this.pos.epoch + 1, index: 0 };
        this.order = this.orderOf(this.pos.epoch);
      }
      out.push(this.order[this.pos.index++]);
    }
    return out;
  }

  get position(): EpochPosition {
    return { ...this.pos };
  }
}
