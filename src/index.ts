// promedical: the public API. Re-exports only; see README.md and DESIGN.md for the contract.

// ops: backends
export { initBackend } from './ops/backend.js';
export type { BackendInfo, BackendPreference, InitBackendOptions } from './ops/backend.js';
export { registerWasmKernels, WASM_EXTRA_KERNELS } from './ops/wasm_kernels.js';

// model: checkpoint I/O
export { readSafetensors, writeSafetensors, SafetensorsError, DTYPE_SIZE, MAX_HEADER_BYTES } from './model/safetensors.js';
export type {
  SafetensorsFile,
  SafetensorsDtype,
  SafetensorsErrorCode,
  TensorInfo,
  RawTensor,
  WriteOptions,
} from './model/safetensors.js';
export { float32ToBf16Bits, bf16BitsToFloat32, float32ToF16Bits, f16BitsToFloat32 } from './model/half.js';

// data: tokenizer and chat
export { ChatTokenizer, loadTokenizer, defaultTokenizerDir, QWEN3_TOKENS, TokenizerError } from './data/tokenizer.js';
export { renderChat } from './data/chat.js';
export type { ChatMessage, ChatTemplateOptions } from './data/chat.js';
