// AdamW (Loshchilov & Hutter 2019) as torch.optim.AdamW: decoupled weight decay, bias
// correction, eps added after the square root. State is keyed by parameter name, so it survives
// reordering and loads into a rebuilt model.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { atomicWrite, readSafetensors, writeSafetensors } from '../model/safetensors.js';

export interface AdamWOptions {
  /** Exponential decay rates of the first and second moments (default [0.9, 0.999]). */
  betas?: [number, number];
  /** Added to the denominator (default 1e-8, PyTorch's; tfjs's Adam uses 1e-7). */
  eps?: number;
  /** Decoupled weight decay for parameters that decay (default 0.01, as torch and transformers). */
  weightDecay?: number;
  /** Which parameters decay. Default: every tensor of rank >= 2 (no decay on norms and biases). */
  decays?: (name: string, v: tf.Variable) => boolean;
}

interface Slot {
  m: tf.Variable;
  v: tf.Variable;
  step: number;
}

export class AdamW {
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  private readonly params: Map<string, tf.Variable>;
  private readonly decay: Map<string, boolean>;
  private readonly slots = new Map<string, Slot>();

  constructor(params: Map<string, tf.Variable>, opts: AdamWOptions = {}) {
    this.params = params;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    const decays = opts.decays ?? ((_: string, v: tf.Variable) => v.rank >= 2);
    this.decay = new Map([...params].map(([n, v]) => [n, decays(n, v)]));
  }

  /** Names of the parameters in the decayed and the non-decayed group. */
  groups(): { decay: string[]; noDecay: string[] } {
    const names = [...this.decay.keys()];
    return { decay: names.filter((n) => this.decay.get(n)), noDecay: names.filter((n) => !this.decay.get(n)) };
  }

  /**
   * One update with learning rate `lr`, from gradients keyed by parameter name. A parameter
   * without a gradient is left alone and its step count does not advance (as in torch).
   */
  step(grads: Map<string, tf.Tensor>, lr: number): void {
    const [b1, b2] = this.betas;
    for (const [name, g] of grads) {
      const p = this.params.get(name);
      if (!p) throw new Error(`AdamW: gradient for unknown parameter ${name}`);
      let slot = this.slots.get(name);
      if (!slot) {
        slot = { m: tf.variable(tf.zerosLike(p), false), v: tf.variable(tf.zerosLike(p), false), step: 0 };
        this.slots.set(name, slot);
      }
      const s = slot;
      s.step += 1;
      const wd = this.decay.get(name) ? this.weightDecay : 0;
      const bc1 = 1 - b1 ** s.step;
      const bc2 = 1 - b2 ** s.step;
      tf.tidy(() => {
        const m = s.m.mul(b1).add(g.mul(1 - b1));
        const v = s.v.mul(b2).add(g.square().mul(1 - b2));
        const denom = v.sqrt().div(Math.sqrt(bc2)).add(this.eps);
        const decayed = wd !== 0 ? p.mul(1 - lr * wd) : p;
        p.assign(decayed.sub(m.div(denom).mul(lr / bc1)));
        s.m.assign(m);
        s.v.assign(v);
      });
    }
  }

  /** Optimizer state as tensors (exp_avg.<name>, exp_avg_sq.<name>) plus step counts. */
  async save(dir: string): Promise<void> {
    const tensors = new Map<string, tf.Tensor>();
    const steps: Record<string, number> = {};
    for (const [name, s] of this.slots) {
      tensors.set(`exp_avg.${name}`, s.m);
      tensors.set(`exp_avg_sq.${name}`, s.v);
      steps[name] = s.step;
    }
    fs.mkdirSync(dir, { recursive: true });
    await writeSafetensors(path.join(dir, 'optimizer.safetensors'), tensors);
    const meta = { betas: this.betas, eps: this.eps, weight_decay: this.weightDecay, steps };
    await atomicWrite(path.join(dir, 'optimizer.json'), (fh) => fh.writeFile(JSON.stringify(meta, null, 2) + '\n'));
  }

  /** Restores state written by save(); parameters are matched by name. */
  load(dir: string): void {
    const file = path.join(dir, 'optimizer.json');
    const meta = JSON.parse(fs.readFileSync(file, 'utf8')) as { steps: Record<string, number> };
    const st = readSafetensors(path.join(dir, 'optimizer.safetensors'));
    try {
      this.disposeState();
      for (const [name, step] of Object.entries(meta.steps)) {
        const p = this.params.get(name);
        if (!p) throw new Error(`${file}: state for ${name}, which this model does not have`);
        const m = st.tensor(`exp_avg.${name}`);
        const v = st.tensor(`exp_avg_sq.${name}`);
        if (!tf.util.arraysEqual(m.shape, p.shape)) throw new Error(`${file}: state for ${name} has shape [${m.shape}], the parameter [${p.shape}]`);
        this.slots.set(name, { m: tf.variable(m, false), v: tf.variable(v, false), step });
        tf.dispose([m, v]);
      }
    } finally {
      st.close();
    }
  }

  private disposeState(): void {
    for (const s of this.slots.values()) tf.dispose([s.m, s.v]);
    this.slots.clear();
  }

  dispose(): void {
    this.disposeState();
  }
}
