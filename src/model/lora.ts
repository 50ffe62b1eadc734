// LoRA adapters (Hu et al. 2021) on Qwen3's projections, saved and loaded in the PEFT layout.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ATTENTION_PROJECTIONS, MLP_PROJECTIONS, type Qwen3ForCausalLM } from './qwen3.js';
import { atomicWrite, readSafetensors, writeSafetensors } from './safetensors.js';

export type LoraTarget = (typeof ATTENTION_PROJECTIONS)[number] | (typeof MLP_PROJECTIONS)[number];

export interface LoraConfig {
  /** Rank r of the update B·A. */
  r: number;
  /** Scale numerator: the update is multiplied by alpha / r (alpha / sqrt(r) with useRslora). */
  alpha: number;
  /** Dropout on the adapter's input while model.training is true (default 0). */
  dropout?: number;
  /** Projections to adapt, by module name (default q_proj and v_proj, as PEFT for Qwen). */
  targetModules?: LoraTarget[];
  /** Rank-stabilised scaling (Kalajdzievski 2023). */
  useRslora?: boolean;
  /** Seeds A's initialisation. */
  seed?: number;
}

const ALL_TARGETS: readonly string[] = [...ATTENTION_PROJECTIONS, ...MLP_PROJECTIONS];

/** The module names (e.g. model.layers.3.mlp.up_proj) that `targets` select. */
function targetModules(model: Qwen3ForCausalLM, targets: readonly string[]): string[] {
  for (const t of targets) if (!ALL_TARGETS.includes(t)) throw new Error(`LoRA target "${t}" is not one of ${ALL_TARGETS.join(', ')}`);
  const modules: string[] = [];
  for (let i = 0; i < model.config.numHiddenLayers; i++) {
    for (const t of ATTENTION_PROJECTIONS) if (targets.includes(t)) modules.push(`model.layers.${i}.self_attn.${t}`);
    for (const t of MLP_PROJECTIONS) if (targets.includes(t)) modules.push(`model.layers.${i}.mlp.${t}`);
  }
  return modules;
}

/** [in, out] of a projection (its weight is [out, in]). */
function projectionShape(model: Qwen3ForCausalLM, module: string): [number, number] {
  const w = model.namedParameters().get(`${module}.weight`);
  if (!w) throw new Error(`no projection ${module}`);
  return [w.shape[1] as number, w.shape[0] as number];
}

/**
 * Attaches fresh adapters: A uniform in ±1/sqrt(in) (PEFT's Kaiming init), B zero, so the model's
 * output is unchanged until training moves B. Afterwards only the adapters train
 * (model.trainableVariables()).
 */
export function addLora(model: Qwen3ForCausalLM, cfg: LoraConfig): void {
  if (model.adapters.size > 0) throw new Error('the model already has LoRA adapters; merge or remove them first');
  if (!(Number.isInteger(cfg.r) && cfg.r > 0)) throw new Error(`LoRA rank must be a positive integer, got ${cfg.r}`);
  const scale = cfg.useRslora ? cfg.alpha / Math.sqrt(cfg.r) : cfg.alpha / cfg.r;
  let seed = (cfg.seed ?? 0) * 100_003 + 1; // never 0, which tfjs's random ops take as "unseeded"
  for (const module of targetModules(model, cfg.targetModules ?? ['q_proj', 'v_proj'])) {
    const [inDim, outDim] = projectionShape(model, module);
    const bound = 1 / Math.sqrt(inDim);
    model.adapters.set(module, {
      A: tf.variable(tf.randomUniform([cfg.r, inDim], -bound, bound, 'float32', seed++)),
      B: tf.variable(tf.zeros([outDim, cfg.r])),
      scale,
      dropout: cfg.dropout ?? 0,
    });
  }
}

/** Folds every adapter into its base weight (W += scale · B·A) and removes the adapters. */
export function mergeLora(model: Qwen3ForCausalLM): void {
  const params = model.namedParameters();
  for (const [module, a] of model.adapters) {
    const w = params.get(`${module}.weight`)!;
    w.assign(tf.tidy(() => w.add(tf.matMul(a.B, a.A).mul(a.scale))));
    tf.dispose([a.A, a.B]);
  }
  model.adapters.clear();
}

/** Runs `fn` on the base model (adapters off), restoring the previous state afterwards. */
export function withAdaptersDisabled<T>(model: Qwen3ForCausalLM, fn: () => T): T {
  const before = model.adaptersEnabled;
  model.adaptersEnabled = false;
  try {
    return fn();
  } finally {
    model.adaptersEnabled = before;
  }
}

const PEFT_PREFIX = 'base_model.model.';

/**
 * Writes adapter_config.json and adapter_model.safetensors as PEFT does, so
 * `PeftModel.from_pretrained(base, dir)` loads them: tensors named
 * base_model.model.<module>.lora_A.weight [r, in] and .lora_B.weight [out, r].
 */
export async function saveLora(model: Qwen3ForCausalLM, dir: string, opts: { baseModelNameOrPath?: string } = {}): Promise<void> {
  if (model.adapters.size === 0) throw new Error('the model has no LoRA adapters to save');
  const first = model.adapters.values().next().value!;
  const r = first.A.shape[0] as number;
  const dropout = first.dropout;
  const alpha = first.scale * r;
  const targets = [...new Set([...model.adapters.keys()].map((m) => m.split('.').at(-1)!))];
  const tensors = new Map<string, tf.Tensor>();
  for (const [module, a] of model.adapters) {
    tensors.set(`${PEFT_PREFIX}${module}.lora_A.weight`, a.A);
    tensors.set(`${PEFT_PREFIX}${module}.lora_B.weight`, a.B);
  }
  fs.mkdirSync(dir, { recursive: true });
  await writeSafetensors(path.join(dir, 'adapter_model.safetensors'), tensors, { metadata: { format: 'pt' } });
  const config = {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: opts.baseModelNameOrPath ?? null,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: alpha,
    lora_dropout: dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r,
    rank_pattern: {},
    revision: null,
    target_modules: targets,
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: false,
  };
  await atomicWrite(path.join(dir, 'adapter_config.json'), async (fh) => {
    await fh.writeFile(JSON.stringify(config, null, 2) + '\n');
  });
}

/** Loads PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors) onto `model`. */
export function loadLora(model: Qwen3ForCausalLM, dir: string): void {
  if (model.adapters.size > 0) throw new Error('the model already has LoRA adapters');
  const configPath = path.join(dir, 'adapter_config.json');
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(fs.readFileSync(configPath, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${configPath}: ${(err as Error).message}`);
  }
  const fail = (msg: string): never => {
    throw new Error(`${configPath}: ${msg}`);
  };
  if (cfg.peft_type !== 'LORA') fail(`peft_type "${String(cfg.peft_type)}" is not LORA`);
  if (cfg.use_dora === true) fail('DoRA adapters are not supported');
  if (cfg.fan_in_fan_out === true) fail('fan_in_fan_out adapters are not supported');
  if (cfg.bias !== undefined && cfg.bias !== 'none') fail(`bias "${String(cfg.bias)}" is not supported (only "none")`);
  if (Array.isArray(cfg.modules_to_save) && cfg.modules_to_save.length > 0) fail('modules_to_save is not supported');
  if (isNonEmpty(cfg.rank_pattern) || isNonEmpty(cfg.alpha_pattern)) fail('per-module rank_pattern / alpha_pattern is not supported');
  const r = cfg.r, alpha = cfg.lora_alpha;
  if (typeof r !== 'number' || typeof alpha !== 'number') return fail('"r" and "lora_alpha" must be numbers');
  const scale = cfg.use_rslora === true ? alpha / Math.sqrt(r) : alpha / r;
  const dropout = typeof cfg.lora_dropout === 'number' ? cfg.lora_dropout : 0;

  const file = path.join(dir, 'adapter_model.safetensors');
  const st = readSafetensors(file);
  try {
    const modules = new Set<string>();
    for (const name of st.names) {
      const m = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/.exec(name);
      if (!m) throw new Error(`${file}: unexpected tensor ${name}`);
      modules.add(m[1]);
    }
    for (const module of modules) {
      const [inDim, outDim] = projectionShape(model, module);
      const a = st.info(`${PEFT_PREFIX}${module}.lora_A.weight`).shape;
      const b = st.info(`${PEFT_PREFIX}${module}.lora_B.weight`).shape;
      if (!tf.util.arraysEqual(a, [r, inDim]) || !tf.util.arraysEqual(b, [outDim, r])) {
        throw new Error(`${file}: ${module} has lora_A [${a}] and lora_B [${b}], expected [${r}, ${inDim}] and [${outDim}, ${r}]`);
      }
      const A = st.tensor(`${PEFT_PREFIX}${module}.lora_A.weight`);
      const B = st.tensor(`${PEFT_PREFIX}${module}.lora_B.weight`);
      model.adapters.set(module, { A: tf.variable(A), B: tf.variable(B), scale, dropout });
      tf.dispose([A, B]);
    }
  } catch (err) {
    for (const a of model.adapters.values()) tf.dispose([a.A, a.B]);
    model.adapters.clear();
    throw err;
  } finally {
    st.close();
  }
}

function isNonEmpty(v: unknown): boolean {
  return typeof v === 'object' && v !== null && Object.keys(v).length > 0;
}
