// readRecords: files (or folders of files) of any supported format -> validated schema v1 records,
// streamed. Strict mode stops at the first bad record with file:line, field path and what was
// expected; lenient mode skips it, remembers why, and reports every skipped line at the end.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FORMATS, fromKqaNli, LINE_IMPORTERS, type RecordFormat } from './importers.js';
import { csvRows, jsonLines, type Located } from './lines.js';
import { DataError, validateRecord, type RubricRecord } from './schema.js';

export interface ReadOptions {
  /** Default 'promedical' (schema v1 itself). */
  format?: RecordFormat;
  /** Default true: the first bad record throws. False: bad records are skipped and reported. */
  strict?: boolean;
  /** Lenient mode: where the end-of-file report of skipped lines goes (default stderr). */
  report?: (line: string) => void;
}

export interface SkippedLine {
  file: string;
  line: number;
  reason: string;
}

export class RecordReader implements AsyncIterable<RubricRecord> {
  /** Lines skipped in lenient mode, with the reason (filled while iterating). */
  readonly skipped: SkippedLine[] = [];
  /** Records yielded so far. */
  count = 0;

  constructor(
    readonly path: string,
    readonly opts: ReadOptions = {},
  ) {
    const format = opts.format ?? 'promedical';
    if (!FORMATS.includes(format)) throw new Error(`unknown format "${format}"; use one of ${FORMATS.join(', ')}`);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<RubricRecord> {
    const format = this.opts.format ?? 'promedical';
    const strict = this.opts.strict ?? true;
    for (const file of filesOf(this.path, format)) {
      const seenIds = new Map<string, number>();
      for await (const item of recordsOf(file, format)) {
        if (item instanceof DataError) {
          if (strict) throw item;
          this.skipped.push({ file: item.file, line: item.line, reason: item.field ? `${item.field}: ${item.reason}` : item.reason });
          continue;
        }
        // The same id may recur (HealthBench repeats prompt_ids with other rubric sets): keep every
        // record, made distinct.
        const n = (seenIds.get(item.id) ?? 0) + 1;
        seenIds.set(item.id, n);
        if (n > 1) item.id = `${item.id}~${n}`;
        this.count++;
        yield item;
      }
    }
    if (!strict && this.skipped.length > 0) {
      const report = this.opts.report ?? ((l: string) => process.stderr.write(l + '\n'));
      report(`${this.path}: skipped ${this.skipped.length} bad record(s):`);
      for (const s of this.skipped) report(`  ${s.file}:${s.line}: ${s.reason}`);
    }
  }
}

/** Streams validated records from a file or a folder of files. */
export function readRecords(file: string, opts: ReadOptions = {}): RecordReader {
  return new RecordReader(file, opts);
}

/** All records of a file or folder (strict unless told otherwise). Reading no record at all is a
 * DataError ("0 records in ..."), saying how many bad lines a lenient read skipped. */
export async function loadRecords(file: string, opts: ReadOptions = {}): Promise<RubricRecord[]> {
  const out: RubricRecord[] = [];
  const reader = readRecords(file, opts);
  for await (const r of reader) out.push(r);
  if (out.length === 0) {
    const skipped = reader.skipped;
    const why =
      skipped.length > 0
        ? `: all ${skipped.length} were bad and skipped (first ${skipped[0].file}:${skipped[0].line}: ${skipped[0].reason})`
        : fs.statSync(file).isDirectory()
          ? ` (no ${(opts.format ?? 'promedical') === 'kqa-nli' ? '.csv' : '.json or .jsonl'} file in it holds one)`
          : ' (it is empty or blank)';
    throw new DataError(file, 0, '', `0 records in ${file}${why}`);
  }
  return out;
}

function filesOf(p: string, format: RecordFormat): string[] {
  if (!fs.existsSync(p)) throw new DataError(p, 0, '', 'no such file or folder');
  if (!fs.statSync(p).isDirectory()) return [p];
  const ext = format === 'kqa-nli' ? /\.csv$/ : /\.jsonl?$/;
  return fs.readdirSync(p).filter((f) => ext.test(f)).sort(naturalOrder).map((f) => path.join(p, f));
}

function naturalOrder(a: string, b: string): number {
  return a.localeCompare(b, undefined, { numeric: true });
}

/** Records (or errors) of one file, validated. */
async function* recordsOf(file: string, format: RecordFormat): AsyncGenerator<RubricRecord | DataError> {
  if (format === 'kqa-nli') {
    yield* kqaNliRecords(file);
    return;
  }
  const importer = LINE_IMPORTERS[format];
  for await (const item of rawObjects(file)) {
    if (item instanceof DataError) {
      yield item;
      continue;
    }
    try {
      const record = importer ? importer(item.value as Record<string, unknown>, { file, line: item.line }) : item.value;
      yield validateRecord(record, file, item.line);
    } catch (err) {
      if (err instanceof DataError) yield err;
      else throw err;
    }
  }
}

/** .json files hold one object (or an array of them), e.g. pretty-printed; others are JSON Lines. */
async function* rawObjects(file: string): AsyncGenerator<Located<unknown> | DataError> {
  if (!file.endsWith('.json')) {
    yield* jsonLines(file);
    return;
  }
  let value: unknown;
  try {
    value = JSON.parse(fs.readFileSync(file, 'utf8').replace(/^\uFEFF/, '')); // a UTF-8 byte order mark is allowed
  } catch (err) {
    yield new DataError(file, 1, '', `not valid JSON: ${(err as Error).message}`);
    return;
  }
  for (const v of Array.isArray(value) ? value : [value]) yield { value: v, line: 1 };
}

async function* kqaNliRecords(file: string): AsyncGenerator<RubricRecord | DataError> {
  let group: Located<Record<string, string>>[] = [];
  const flush = function* (): Generator<RubricRecord | DataError> {
    if (group.length === 0) return;
    try {
      yield validateRecord(fromKqaNli(group, file), file, group[0].line);
    } catch (err) {
      if (err instanceof DataError) yield err;
      else throw err;
    }
    group = [];
  };
  for await (const row of csvRows(file)) {
    if (row instanceof DataError) {
      yield row;
      continue;
    }
    if (group.length > 0 && row.value.Question !== group[0].value.Question) yield* flush();
    group.push(row);
  }
  yield* flush();
}
