// Explicit Criteria Injection (ProMedical): each (prompt, response, criterion) becomes one input
// in which the criterion is stated in a system block before the conversation, so the reward model
// scores the response against that criterion alone:
//
//   <|im_start|>system\n{ECI_INSTRUCTION}\nCriterion ({tier}): {criterion}<|im_end|>\n
//   ...the prompt's turns...
//   <|im_start|>assistant\n<think>\n\n</think>\n\n{response}<|im_end|>
//
// The rendering is the checkpoint's own chat template; the head reads the last token (<|im_end|>).
import type { ChatMessage } from './chat.js';
import type { Criterion, RubricRecord } from './schema.js';
import type { ChatTokenizer } from './tokenizer.js';
import { padBatch, type TokenBatch } from './batch.js';

export const ECI_INSTRUCTION =
  'You are a medical response evaluator. Judge whether the assistant\'s final response meets the criterion below.';

export interface EciOptions {
  /** Longest input in tokens (default 1024). */
  maxLength?: number;
}

/** How an instance was shortened to fit (all zero when it fit). */
export interface Truncation {
  /** Tokens of the response cut off its tail (of those tokenized: see responseCharsCut). */
  responseTokensCut: number;
  /** Characters of a very long response cut before tokenizing, so that the work per instance is
   * bounded by maxLength (ChatTokenizer.encodeHead); their tokens are not counted above. */
  responseCharsCut: number;
  promptTurnsDropped: number;
}

export interface EciInstance {
  ids: number[];
  truncation: Truncation;
}

/** The system block that injects the criterion. */
export function criterionBlock(c: Pick<Criterion, 'text' | 'tier'>): string {
  return `${ECI_INSTRUCTION}\nCriterion (${c.tier}): ${c.text}`;
}

/**
 * Token ids of one ECI input. When it is too long the response loses its tail first; if the
 * prompt alone is still too long, the oldest turns go (never the criterion, never the last turn).
 * Throws when the criterion and the last turn alone do not fit. The work is bounded by maxLength,
 * not by the texts' lengths: only the response's first tokens are computed (encodeHead), and a
 * rendered prompt too long to fit in any case is not tokenized (fitsIn).
 */
export function eciInstance(tok: ChatTokenizer, prompt: ChatMessage[], response: string, criterion: Pick<Criterion, 'text' | 'tier'>, opts: EciOptions = {}): EciInstance {
  const maxLength = opts.maxLength ?? 1024;
  const system: ChatMessage = { role: 'system', content: criterionBlock(criterion) };
  // The assistant turn is rendered with a placeholder to find where the response text goes.
  const MARK = '\u0000RESPONSE\u0000';
  const render = (turns: ChatMessage[]) => {
    const text = tok.applyChatTemplate([system, ...turns, { role: 'assistant', content: MARK }]);
    const at = text.lastIndexOf(MARK);
    return { head: text.slice(0, at), tail: text.slice(at + MARK.length).replace(/\n$/, '') };
  };
  let turns = prompt;
  let dropped = 0;
  for (;;) {
    const { head, tail } = render(turns);
    const fits = tok.fitsIn(head + tail, maxLength);
    const headIds = fits ? tok.encode(head) : [];
    const tailIds = fits ? tok.encode(tail) : [];
    const room = fits ? maxLength - headIds.length - tailIds.length : -1;
    if (room >= 0) {
      const kept = tok.encodeHead(response, room);
      return { ids: [...headIds, ...kept.ids, ...tailIds], truncation: { responseTokensCut: kept.idsCut, responseCharsCut: kept.charsCut, promptTurnsDropped: dropped } };
    }
    // Keep the prompt's own leading system turn and its last turn.
    const first = turns[0]?.role === 'system' ? 1 : 0;
    if (turns.length - first <= 1) {
      const took = fits ? `${headIds.length + tailIds.length}` : `more than that (${head.length + tail.length} characters)`;
      throw new Error(`ECI input cannot fit in ${maxLength} tokens: the criterion and the prompt's last turn alone take ${took}`);
    }
    // Drop the oldest turn, and an assistant turn it leaves leading, so turns start with the user.
    let next = first + 1;
    while (next < turns.length - 1 && turns[next].role === 'assistant') next++;
    dropped += next - first;
    turns = [...turns.slice(0, first), ...turns.slice(next)];
  }
}

/** Running totals of truncations, for the run's report. */
export class TruncationCounter {
  instances = 0;
  responsesCut = 0;
  responseTokensCut = 0;
  responseCharsCut = 0;
  promptsShortened = 0;

  add(t: Truncation): void {
    this.instances++;
    if (t.responseTokensCut > 0 || t.responseCharsCut > 0) this.responsesCut++;
    this.responseTokensCut += t.responseTokensCut;
    this.responseCharsCut += t.responseCharsCut;
    if (t.promptTurnsDropped > 0) this.promptsShortened++;
  }

  toString(): string {
    const chars = this.responseCharsCut > 0 ? ` and ${this.responseCharsCut} characters not tokenized` : '';
    return `${this.responsesCut} of ${this.instances} ECI inputs had their response cut (${this.responseTokensCut} tokens${chars}), ${this.promptsShortened} lost earlier prompt turns`;
  }
}

/** One (prompt, response, criterion) of a record, by ids. */
export interface EciItem {
  record: RubricRecord;
  responseId: string;
  criterionId: string;
}

function instanceOf(tok: ChatTokenizer, item: EciItem, opts: EciOptions): EciInstance {
  const response = item.record.responses.find((r) => r.id === item.responseId);
  const criterion = item.record.criteria.find((c) => c.id === item.criterionId);
  if (!response || !criterion) throw new Error(`record ${item.record.id}: no response "${item.responseId}" or criterion "${item.criterionId}"`);
  return eciInstance(tok, item.record.prompt, response.text, criterion, opts);
}

/** A batch of ECI items (pointwise), counting truncations in `counter`. */
export function eciBatch(tok: ChatTokenizer, items: EciItem[], opts: EciOptions & { counter?: TruncationCounter } = {}): TokenBatch {
  const rows = items.map((it) => {
    const inst = instanceOf(tok, it, opts);
    opts.counter?.add(inst.truncation);
    return inst.ids;
  });
  return padBatch(rows, tok.padTokenId);
}

/**
 * Pairwise batches for Bradley-Terry on one criterion per pair: row i of `chosen` and row i of
 * `rejected` are the same prompt and criterion with the two responses, padded to one length.
 */
export function eciPairBatch(
  tok: ChatTokenizer,
  pairs: { record: RubricRecord; chosen: string; rejected: string; criterionId: string }[],
  opts: EciOptions & { counter?: TruncationCounter } = {},
): { chosen: TokenBatch; rejected: TokenBatch } {
  const side = (key: 'chosen' | 'rejected') =>
    pairs.map((p) => {
      const inst = instanceOf(tok, { record: p.record, responseId: p[key], criterionId: p.criterionId }, opts);
      opts.counter?.add(inst.truncation);
      return inst.ids;
    });
  const c = side('chosen');
  const r = side('rejected');
  const T = Math.max(...c.map((x) => x.length), ...r.map((x) => x.length));
  return { chosen: padBatch(c, tok.padTokenId, T), rejected: padBatch(r, tok.padTokenId, T) };
}
