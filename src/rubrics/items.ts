// What the rubric pipeline's stages hand each other, in one work folder (docs/rubrics.md):
//
//   prepare -> WORK/prepared.jsonl   instructions kept (deduplicated, difficulty in range) with
//                                    their candidate answers
//   draft   -> WORK/drafts.jsonl     each prepared item with an LLM-drafted schema-v1 rubric
//   review  -> WORK/journal.jsonl    physicians' decisions, append-only
//   export  -> OUT/train.jsonl, OUT/test.jsonl   schema-v1 records for train-rm
//
// Every file is JSON Lines, one item per line, keyed by the instruction's id.
import type { ChatMessage } from '../data/chat.js';
import type { Criterion } from '../data/schema.js';

/** One answer to an instruction, from a candidate model. */
export interface Candidate {
  /** Unique within its item, e.g. "c0". */
  id: string;
  /** The model that wrote it, as named in --candidates (URL=MODEL). */
  model: string;
  text: string;
}

/** An instruction that survived prepare. */
export interface PreparedItem {
  id: string;
  prompt: ChatMessage[];
  category?: string;
  specialty?: string;
  /** The judge's difficulty score (0-10) and its one-line reason. */
  difficulty: { score: number; reason?: string; model: string };
  candidates: Candidate[];
  /** Where the instruction came from (input file, line, importer format). */
  source?: { format: string; [key: string]: unknown };
}

/** A prepared item with its drafted rubric. */
export interface DraftItem extends PreparedItem {
  /** Schema-v1 criteria: proficiency weights sum to 1; ids unique within the item. */
  criteria: Criterion[];
  /** The drafting model, and whether the draft needed its one repair re-ask. */
  draft: { model: string; repaired: boolean };
  /** Optional pre-grades by the drafting LLM: candidate id -> criterion id -> met. */
  pregrades?: Record<string, Record<string, boolean>>;
}
