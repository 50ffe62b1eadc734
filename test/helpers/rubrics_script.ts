// Reading a chat-completions request of the rubric stages in a fixture's `reply` callback: which
// call it is (by its system prompt, from src/rubrics/prompts.ts) and which instruction it is about
// (test instructions carry a tag like "[q3]" in their text). The replies themselves are the tests'.
import { DRAFT_SYSTEM, JUDGE_SYSTEM, PREGRADE_SYSTEM } from '../../src/rubrics/prompts.js';
import type { ChatBody } from './openai_chat_fixture.js';

export type CallKind = 'judge' | 'candidate' | 'draft' | 'pregrade';

export function kindOf(body: ChatBody): CallKind {
  const system = body.messages.find((m) => m.role === 'system')?.content;
  return system === JUDGE_SYSTEM ? 'judge' : system === DRAFT_SYSTEM ? 'draft' : system === PREGRADE_SYSTEM ? 'pregrade' : 'candidate';
}

/** The instruction's tag, e.g. "q3", from the first message that holds one. */
export function tagOf(body: ChatBody): string {
  for (const m of body.messages) {
    const t = /\[(q\d+)\]/.exec(m.content);
    if (t) return t[1];
  }
  throw new Error(`no [qN] tag in the request: ${JSON.stringify(body.messages).slice(0, 200)}`);
}

/** Distinct test questions (no two near-duplicates), each tagged. */
export const QUESTIONS: Record<string, string> = {
  q1: '[q1] I have had a pounding headache for three days and ibuprofen is not helping, what should I do next?',
  q2: '[q2] What is the normal resting heart rate for a healthy adult who exercises a few times every week?',
  q3: '[q3] My father is 79, takes warfarin and digoxin, and has been confused and vomiting since yesterday evening.',
  q4: '[q4] Can you write me a poem about the ocean at night with waves and stars and a small boat?',
  q5: '[q5] After starting lisinopril two weeks ago my lips swelled up this morning, should I keep taking the tablets?',
  q6: '[q6] My two year old swallowed a button battery about an hour ago and seems fine, do we need the hospital?',
  q7: '[q7] I am 30 weeks pregnant with a bad headache, blurred vision and swollen hands since this afternoon.',
  q8: '[q8] Is it safe to combine sertraline with the migraine medicine sumatriptan that my neurologist just prescribed?',
};
