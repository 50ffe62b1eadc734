// The review journal, WORK/journal.jsonl: every reviewer decision is one JSON line, appended and
// fsynced before the server answers, so an acknowledged decision survives a killed server. Nothing
// is ever rewritten; the current state is the fold of the file (latest entry per key wins), and
// the keys include the reviewer, so two reviewers never overwrite each other.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import type { Tier } from '../data/schema.js';

export type Action = 'accept' | 'edit' | 'reject';
export const ACTIONS: readonly Action[] = ['accept', 'edit', 'reject'];

/** An edit's replacement for the criterion (its id stays). */
export interface CriterionEdit {
  text: string;
  tier: Tier;
  weight?: number;
}

interface EntryBase {
  /** 1, 2, 3, ... in file order: the order in which entries were acknowledged. */
  seq: number;
  /** A random UUID, unique over all journals (for merging journals of several servers). */
  uuid: string;
  /** ISO time the server wrote it. */
  at: string;
  reviewer: string;
  round: number;
  item: string;
}

export interface DecisionEntry extends EntryBase {
  type: 'decision';
  criterion: string;
  action: Action;
  /** Only for action "edit". */
  edit?: CriterionEdit;
}

export interface GradeEntry extends EntryBase {
  type: 'grade';
  /** A candidate id of the item. */
  response: string;
  criterion: string;
  met: boolean;
}

/** The reviewer finished the item; `seconds` is the time this visit of the page spent on it. */
export interface DoneEntry extends EntryBase {
  type: 'item-done';
  seconds: number;
}

export type JournalEntry = DecisionEntry | GradeEntry | DoneEntry;
/** What a caller gives; the journal adds seq, uuid and at. */
export type NewEntry = JournalEntry extends infer E ? (E extends JournalEntry ? Omit<E, 'seq' | 'uuid' | 'at'> : never) : never;

/**
 * The entries of a journal file (none if it does not exist). A last line without its newline is
 * what a crash mid-write leaves; it was never acknowledged and is ignored. Any other bad line is
 * an error naming it.
 */
export function readJournal(file: string): JournalEntry[] {
  if (!fs.existsSync(file)) return [];
  const text = fs.readFileSync(file, 'utf8');
  const lines = text.split('\n');
  lines.pop(); // '' when the file ends with a newline, else the torn line
  const out: JournalEntry[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let e: unknown;
    try {
      e = JSON.parse(line);
    } catch (err) {
      throw new Error(`${file}:${i + 1}: not a journal entry: ${(err as Error).message}`);
    }
    out.push(e as JournalEntry);
  });
  return out;
}

/** An open journal file, appended to one fsynced line at a time. */
export class Journal {
  private fd: number;
  /** The file's size after the last complete line. */
  private bytes: number;
  private seq: number;

  constructor(readonly file: string) {
    lock(file);
    const entries = readJournal(file);
    this.seq = entries.reduce((m, e) => Math.max(m, e.seq ?? 0), 0);
    this.fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o644);
    const text = fs.readFileSync(this.fd, 'utf8');
    // A torn last line from a crash is cut off, so the next entry starts on its own line.
    this.bytes = Buffer.byteLength(text.slice(0, text.lastIndexOf('\n') + 1));
    if (this.bytes !== Buffer.byteLength(text)) {
      fs.ftruncateSync(this.fd, this.bytes);
      fs.fsyncSync(this.fd);
    }
  }

  /** Entries written so far (this process and before). */
  get count(): number {
    return this.seq;
  }

  /**
   * Writes one entry and returns it once it is on disk. A failed write throws, and the file is cut
   * back to its last complete line so a half-written entry cannot glue onto the next one.
   */
  append(entry: NewEntry): JournalEntry {
    const full = { seq: this.seq + 1, uuid: randomUUID(), at: new Date().toISOString(), ...entry } as JournalEntry;
    const line = Buffer.from(JSON.stringify(full) + '\n');
    try {
      fs.appendFileSync(this.fd, line);
      fs.fsyncSync(this.fd);
    } catch (err) {
      try {
        fs.ftruncateSync(this.fd, this.bytes);
      } catch {
        // The next write fails the same way; nothing was acknowledged.
      }
      throw err;
    }
    this.bytes += line.length;
    this.seq++;
    return full;
  }

  close(): void {
    fs.closeSync(this.fd);
    fs.rmSync(`${this.file}.lock`, { force: true });
  }
}

/**
 * Claims FILE.lock for this process: a second writer would keep its own fold and numbering and
 * neither would see the other's decisions. A lock whose process is gone (a killed server) is taken
 * over.
 */
function lock(file: string): void {
  const lockFile = `${file}.lock`;
  try {
    const pid = Number(fs.readFileSync(lockFile, 'utf8'));
    if (pid !== process.pid && pid > 0 && alive(pid)) throw new Error(`${file} is open in another process (pid ${pid}): one review server per work folder (delete ${lockFile} if that process is not one)`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  fs.writeFileSync(lockFile, String(process.pid));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One reviewer's current state of one item. */
export interface ItemState {
  /** criterion id -> the latest decision on it. */
  decisions: Map<string, DecisionEntry>;
  /** candidate id -> criterion id -> the latest grade. */
  grades: Map<string, Map<string, GradeEntry>>;
  /** The item-done entries (one per finished visit); empty while not finished. */
  done: DoneEntry[];
}

/** reviewer -> item id -> state. */
export type Folded = Map<string, Map<string, ItemState>>;

export function emptyState(): ItemState {
  return { decisions: new Map(), grades: new Map(), done: [] };
}

/** Folds entries in journal order: per (reviewer, item, criterion) and per (reviewer, item,
 * response, criterion) the latest entry wins. */
export function foldJournal(entries: Iterable<JournalEntry>, into: Folded = new Map()): Folded {
  for (const e of entries) foldEntry(into, e);
  return into;
}

export function foldEntry(folded: Folded, e: JournalEntry): void {
  let byItem = folded.get(e.reviewer);
  if (!byItem) folded.set(e.reviewer, (byItem = new Map()));
  let s = byItem.get(e.item);
  if (!s) byItem.set(e.item, (s = emptyState()));
  if (e.type === 'decision') s.decisions.set(e.criterion, e);
  else if (e.type === 'grade') {
    let g = s.grades.get(e.response);
    if (!g) s.grades.set(e.response, (g = new Map()));
    g.set(e.criterion, e);
  } else if (e.type === 'item-done') s.done.push(e);
}
