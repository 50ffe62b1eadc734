// The tiny reward model and bundled records the serving tests share, and a JSON fetch helper.
import { loadRecords } from '../../src/data/records.js';
import type { RubricRecord } from '../../src/data/schema.js';
import { loadTokenizer } from '../../src/data/tokenizer.js';
import { loadQwen3 } from '../../src/model/pretrained.js';
import { ensureTinyQwen3 } from '../../src/model/tiny.js';
import { CriteriaRewardModel } from '../../src/reward/model.js';
import { useBackend } from '../helpers/backends.js';

export const TEST_RECORDS = new URL('../../data/test.jsonl', import.meta.url).pathname;

/** A tiny, untrained reward model (maxLength 256) on wasm. */
export async function tinyRewardModel(maxLength = 256): Promise<CriteriaRewardModel> {
  await useBackend('wasm');
  const dir = await ensureTinyQwen3(undefined, { log: () => {} });
  return new CriteriaRewardModel(await loadQwen3(dir), loadTokenizer(dir), { maxLength, seed: 1 });
}

export async function testRecords(): Promise<RubricRecord[]> {
  return loadRecords(TEST_RECORDS);
}

export interface Answer {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** POSTs `body` (an object as JSON, or a raw string) and parses the JSON answer. */
export async function post(url: string, body: unknown): Promise<Answer> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, headers: r.headers, body: text ? JSON.parse(text) : null };
}

export async function get(url: string): Promise<{ status: number; text: string }> {
  const r = await fetch(url);
  return { status: r.status, text: await r.text() };
}
