// What `rubrics prepare` and `rubrics draft` share: their work files (JSON Lines, one finished item
// per line, appended and fsynced at once), the settings a work folder was started with, failure
// records, and a pool that runs the pending items with bounded LLM calls in flight until done or
// aborted. A rerun reads what is there and does only the rest; when every item is done the
// outputs are rewritten in input order, so an interrupted-and-resumed run ends with the same
// files as an uninterrupted one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataError } from '../data/schema.js';
import { Aborted, type ChatClient } from './chat_client.js';

/** The files of a work folder that prepare and draft write (items.ts lists the contract's). */
export const WORK_FILES = {
  prepared: 'prepared.jsonl',
  drafts: 'drafts.jsonl',
  duplicates: 'duplicates.jsonl',
  filtered: 'filtered.jsonl',
  failures: 'failures.jsonl',
} as const;

export type StageName = 'prepare' | 'draft';

/** An item a stage gave up on; a rerun of that stage tries it again. */
export interface Failure {
  id: string;
  stage: StageName;
  error: string;
  /** HTTP attempts of the call that failed (both asks counted for a re-asked reply). */
  attempts: number;
}

/** Ctrl-C (the caller's signal): what was finished is on disk; a rerun continues. */
export class StageInterrupted extends Error {
  override readonly name = 'StageInterrupted';
  constructor(
    readonly stage: StageName,
    readonly done: number,
    readonly left: number,
  ) {
    super(`rubrics ${stage} interrupted with ${left} item(s) left (${done} done, kept on disk): run the same command again to continue`);
  }
}

/** A work folder started with other settings than the rerun's. */
export class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

/**
 * The values of a JSON Lines work file (none when it is absent). A last line without its newline
 * is a write cut short by a crash: it is ignored, and cut off the file when `repair` is set. A bad
 * line before the last is damage, a DataError naming it.
 */
export function readWorkFile<T>(file: string, opts: { repair?: boolean; log?: (line: string) => void } = {}): T[] {
  if (!fs.existsSync(file)) return [];
  let text = fs.readFileSync(file, 'utf8');
  if (text !== '' && !text.endsWith('\n')) {
    const keep = text.lastIndexOf('\n') + 1;
    opts.log?.(`${file}: ignoring a torn last line (${text.length - keep} characters cut short by a crash)${opts.repair ? '; cut it off' : ''}`);
    text = text.slice(0, keep);
    if (opts.repair) fs.truncateSync(file, Buffer.byteLength(text));
  }
  const out: T[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push(JSON.parse(line) as T);
    } catch (err) {
      throw new DataError(file, i + 1, '', `not valid JSON (${(err as Error).message}); the file is damaged: fix or delete that line`);
    }
  });
  return out;
}

/** Appends one JSON line and fsyncs it: a finished item survives a crash right after. */
export function appendLine(file: string, value: unknown): void {
  const fd = fs.openSync(file, 'a');
  try {
    fs.writeSync(fd, JSON.stringify(value) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Replaces a file with these JSON lines at once (write aside, then rename). */
export function writeLines(file: string, values: readonly unknown[]): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, values.map((v) => JSON.stringify(v) + '\n').join(''));
  fs.renameSync(tmp, file);
}

/**
 * The settings a work folder's stage was started with (WORK/<stage>.json): a rerun must give the
 * same, or its items would mix two runs' results. Returns a function that writes them (the caller
 * writes only once every input is validated).
 */
export function checkSettings(work: string, stage: StageName, settings: Record<string, unknown>): () => void {
  const file = path.join(work, `${stage}.json`);
  if (fs.existsSync(file)) {
    let before: Record<string, unknown>;
    try {
      before = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new SettingsError(`${file}: not valid JSON (${(err as Error).message})`);
    }
    const changed = Object.keys({ ...before, ...settings }).filter((k) => JSON.stringify(before[k]) !== JSON.stringify(settings[k]));
    if (changed.length > 0) {
      const show = (v: unknown) => (v === undefined ? 'nothing' : JSON.stringify(v));
      throw new SettingsError(
        `${work} was started with other ${stage} settings (${changed.map((k) => `${k}: ${show(before[k])} then, ${show(settings[k])} now`).join('; ')}): rerun with the same ones, or use a new --work folder`,
      );
    }
  }
  return () => {
    fs.mkdirSync(work, { recursive: true });
    if (!fs.existsSync(file)) fs.writeFileSync(file, JSON.stringify(settings, null, 2) + '\n');
  };
}

/** The failures of other stages (kept as they are) and this stage's (dropped: retried now). */
export function otherStagesFailures(work: string, stage: StageName): Failure[] {
  return readWorkFile<Failure>(path.join(work, WORK_FILES.failures), { repair: true }).filter((f) => f.stage !== stage);
}

/** At most `limit` calls of `fn` at once, the rest queued in order. */
export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/** The client with its calls counted against the stage's calls in flight. */
export function limited(client: ChatClient, calls: Semaphore): ChatClient {
  return { url: client.url, model: client.model, chat: (req, signal) => calls.run(() => client.chat(req, signal)) };
}

/**
 * Runs `work` over the items, `workers` at a time, until all are done or `signal` fires (then
 * the items in flight are aborted, and true is returned). `work` records its own item's outcome;
 * anything it throws other than Aborted (a full disk, a bug) stops the pool and is rethrown.
 */
export async function runPool<T>(items: readonly T[], workers: number, work: (item: T, signal: AbortSignal) => Promise<void>, signal?: AbortSignal): Promise<boolean> {
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) stop.abort();
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && !stop.signal.aborted) {
      const item = items[next++];
      try {
        await work(item, stop.signal);
      } catch (err) {
        if (!(err instanceof Aborted) && !failure) failure = { err };
        stop.abort();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(workers, items.length) }, worker));
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (failure) throw failure.err;
  return stop.signal.aborted;
}

/** The values ordered as `ids` lists them (values of ids not listed last, in their order). */
export function inOrder<T extends { id: string }>(values: readonly T[], ids: readonly string[]): T[] {
  const rank = new Map(ids.map((id, i) => [id, i]));
  return values.map((v, i) => ({ v, r: rank.get(v.id) ?? ids.length + i })).sort((a, b) => a.r - b.r).map((x) => x.v);
}
