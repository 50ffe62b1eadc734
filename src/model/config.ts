// Qwen3 dense decoder configuration: presets for the released sizes, and config.json I/O in the
// form transformers writes (so a saved folder loads in Hugging Face transformers).
import * as fs from 'node:fs';

export interface Qwen3Config {
  vocabSize: number; // embedding rows (151,936 for released Qwen3; ids in use end at 151,668)
  hiddenSize: number; // H, the residual stream width
  intermediateSize: number; // I, the SwiGLU MLP width
  numHiddenLayers: number;
  numAttentionHeads: number; // query heads
  numKeyValueHeads: number; // key/value heads (GQA): each serves numAttentionHeads / numKeyValueHeads queries
  headDim: number; // D, from the config; heads * D may differ from H (0.6B: 16 * 128 = 2048 vs 1024)
  rmsNormEps: number;
  ropeTheta: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean; // lm_head shares embed_tokens' weight
  bosTokenId: number;
  eosTokenId: number;
  /** On-disk dtype recorded in config.json ("torch_dtype"). */
  torchDtype: 'float32' | 'bfloat16' | 'float16';
}

export type Qwen3Preset = '0.6B' | '1.7B' | '4B' | '8B' | 'tiny';

const COMMON = {
  vocabSize: 151936,
  numKeyValueHeads: 8,
  headDim: 128,
  rmsNormEps: 1e-6,
  ropeTheta: 1_000_000,
  maxPositionEmbeddings: 40960,
  bosTokenId: 151643,
  eosTokenId: 151645,
  torchDtype: 'bfloat16' as const,
};

const PRESETS: Record<Qwen3Preset, Qwen3Config> = {
  '0.6B': { ...COMMON, hiddenSize: 1024, intermediateSize: 3072, numHiddenLayers: 28, numAttentionHeads: 16, tieWordEmbeddings: true },
  '1.7B': { ...COMMON, hiddenSize: 2048, intermediateSize: 6144, numHiddenLayers: 28, numAttentionHeads: 16, tieWordEmbeddings: true },
  '4B': { ...COMMON, hiddenSize: 2560, intermediateSize: 9728, numHiddenLayers: 36, numAttentionHeads: 32, tieWordEmbeddings: true },
  '8B': { ...COMMON, hiddenSize: 4096, intermediateSize: 12288, numHiddenLayers: 36, numAttentionHeads: 32, tieWordEmbeddings: false },
  // The bundled test/example model: Qwen3's full vocabulary (so the real tokenizer works) around a
  // small body; heads * headDim (128) != hiddenSize (64) on purpose, as in the released sizes.
  tiny: {
    ...COMMON,
    hiddenSize: 64,
    intermediateSize: 192,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 32,
    tieWordEmbeddings: true,
  },
};

/** The configuration of a released Qwen3 size, or of the bundled tiny model. */
export function qwen3Config(preset: Qwen3Preset): Qwen3Config {
  const c = PRESETS[preset];
  if (!c) throw new Error(`unknown Qwen3 preset "${preset}"; use one of ${Object.keys(PRESETS).join(', ')}`);
  return { ...c };
}

/** Number of parameters (lm_head counted only when untied). */
export function parameterCount(c: Qwen3Config): number {
  const H = c.hiddenSize, D = c.headDim, I = c.intermediateSize;
  const attn = H * c.numAttentionHeads * D * 2 + H * c.numKeyValueHeads * D * 2 + 2 * D;
  const layer = attn + 3 * H * I + 2 * H;
  return c.vocabSize * H * (c.tieWordEmbeddings ? 1 : 2) + c.numHiddenLayers * layer + H;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Reads a transformers config.json (model_type "qwen3"). Settings this implementation does not
 * compute (rope scaling, sliding windows, attention biases, other activations) are refused with
 * the field named, never silently ignored.
 */
export function qwen3ConfigFromHF(json: Record<string, unknown>, source = 'config.json'): Qwen3Config {
  const fail = (msg: string): never => {
    throw new ConfigError(`${source}: ${msg}`);
  };
  if (json.model_type !== undefined && json.model_type !== 'qwen3') {
    fail(`model_type "${String(json.model_type)}" is not supported (only "qwen3", the dense decoder)`);
  }
  const int = (key: string, fallback?: number): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(`"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const num = (key: string, fallback: number): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== 'number' || !(v > 0)) fail(`"${key}" must be a positive number, got ${JSON.stringify(v)}`);
    return v as number;
  };
  if (json.rope_scaling !== undefined && json.rope_scaling !== null) fail('"rope_scaling" is set; scaled RoPE (YaRN, linear, dynamic) is not supported');
  if (json.use_sliding_window === true) fail('"use_sliding_window" is true; sliding-window attention is not supported');
  if (json.attention_bias === true) fail('"attention_bias" is true; Qwen3 projections have no bias');
  if (json.hidden_act !== undefined && json.hidden_act !== 'silu') fail(`"hidden_act" is "${String(json.hidden_act)}"; only "silu" is supported`);
  if (typeof json.attention_dropout === 'number' && json.attention_dropout !== 0) fail('"attention_dropout" must be 0');
  const heads = int('num_attention_heads');
  const kvHeads = int('num_key_value_heads', heads);
  if (heads % kvHeads !== 0) fail(`num_attention_heads (${heads}) must be a multiple of num_key_value_heads (${kvHeads})`);
  const hidden = int('hidden_size');
  const dtype = json.torch_dtype ?? json.dtype ?? 'bfloat16';
  if (dtype !== 'float32' && dtype !== 'bfloat16' && dtype !== 'float16') fail(`"torch_dtype" "${String(dtype)}" is not float32, bfloat16 or float16`);
  const tie = json.tie_word_embeddings ?? false;
  if (typeof tie !== 'boolean') fail('"tie_word_embeddings" must be true or false');
  const eos = Array.isArray(json.eos_token_id) ? json.eos_token_id[0] : json.eos_token_id;
  return {
    vocabSize: int('vocab_size'),
    hiddenSize: hidden,
    intermediateSize: int('intermediate_size'),
    numHiddenLayers: int('num_hidden_layers'),
    numAttentionHeads: heads,
    numKeyValueHeads: kvHeads,
    headDim: int('head_dim', hidden / heads),
    rmsNormEps: num('rms_norm_eps', 1e-6),
    ropeTheta: num('rope_theta', 1e6),
    maxPositionEmbeddings: int('max_position_embeddings', 40960),
    tieWordEmbeddings: tie as boolean,
    bosTokenId: typeof json.bos_token_id === 'number' ? json.bos_token_id : 151643,
    eosTokenId: typeof eos === 'number' ? eos : 151645,
    torchDtype: dtype as Qwen3Config['torchDtype'],
  };
}

export function readQwen3Config(file: string): Qwen3Config {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${file}: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(`${file}: not a JSON object`);
  return qwen3ConfigFromHF(json as Record<string, unknown>, file);
}

/** config.json as transformers writes it for Qwen3ForCausalLM. */
export function qwen3ConfigToHF(c: Qwen3Config): Record<string, unknown> {
  return {
    architectures: ['Qwen3ForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    head_dim: c.headDim,
    hidden_act: 'silu',
    hidden_size: c.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: c.intermediateSize,
    max_position_embeddings: c.maxPositionEmbeddings,
    max_window_layers: c.numHiddenLayers,
    model_type: 'qwen3',
    num_attention_heads: c.numAttentionHeads,
    num_hidden_layers: c.numHiddenLayers,
    num_key_value_heads: c.numKeyValueHeads,
    rms_norm_eps: c.rmsNormEps,
    rope_scaling: null,
    rope_theta: c.ropeTheta,
    sliding_window: null,
    tie_word_embeddings: c.tieWordEmbeddings,
    torch_dtype: c.torchDtype,
    transformers_version: '4.51.0',
    use_cache: true,
    use_sliding_window: false,
    vocab_size: c.vocabSize,
  };
}
