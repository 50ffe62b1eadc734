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
