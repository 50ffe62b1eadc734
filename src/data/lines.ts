// Streaming readers: JSON Lines and CSV (RFC 4180: quoted fields may hold commas, quotes and
// newlines), one record at a time with its line number, in constant memory.
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { DataError } from './schema.js';

export interface Located<T> {
  value: T;
  /** 1-based line where the record starts. */
  line: number;
}

/** U+FEFF, which editors (Notepad, Excel's "CSV UTF-8") write at the start of a UTF-8 file. */
const BOM = '\uFEFF';

/**
 * Non-blank lines of a text file with their line numbers; a UTF-8 byte order mark at the start of
 * the file is dropped. readline joins the chunks of a long line by string concatenation (ropes in
 * V8) and searches only each new chunk for the line end, so one huge line costs linear time.
 */
export async function* textLines(file: string): AsyncGenerator<{ text: string; line: number }> {
  if (!fs.existsSync(file)) throw new DataError(file, 0, '', 'no such file');
  const rl = readline.createInterface({ input: fs.createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let line = 0;
  for await (const raw of rl) {
    line++;
    const text = line === 1 && raw.startsWith(BOM) ? raw.slice(1) : raw;
    if (text.trim() !== '') yield { text, line };
  }
}

/** JSON values of a JSON Lines file; a line that does not parse yields a DataError instead. */
export async function* jsonLines(file: string): AsyncGenerator<Located<unknown> | DataError> {
  for await (const { text, line } of textLines(file)) {
    try {
      yield { value: JSON.parse(text), line };
    } catch (err) {
      yield new DataError(file, line, '', `not valid JSON: ${(err as Error).message}`);
    }
  }
}

/** Rows of a CSV file as objects keyed by the header row (an empty header name becomes "_index");
 * a UTF-8 byte order mark at the start of the file is dropped. */
export async function* csvRows(file: string): AsyncGenerator<Located<Record<string, string>> | DataError> {
  if (!fs.existsSync(file)) throw new DataError(file, 0, '', 'no such file');
  let header: string[] | null = null;
  let field = '';
  let row: string[] = [];
  let inQuotes = false;
  let line = 1;
  let rowStart = 1;
  let pendingQuote = false; // saw a quote inside a quoted field: either "" or the closing quote
  const finishRow = function* (): Generator<Located<Record<string, string>> | DataError> {
    row.push(field);
    field = '';
    const cells = row;
    row = [];
    if (cells.length === 1 && cells[0] === '') return; // blank line
    if (!header) {
      header = cells.map((h) => (h === '' ? '_index' : h));
      return;
    }
    if (cells.length !== header.length) {
      yield new DataError(file, rowStart, '', `expected ${header.length} columns, got ${cells.length}`);
      return;
    }
    yield { value: Object.fromEntries(header.map((h, i) => [h, cells[i]])), line: rowStart };
  };
  let atStart = true;
  for await (const chunk of fs.createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 16 })) {
    for (const ch of chunk as string) {
      if (atStart) {
        atStart = false;
        if (ch === BOM) continue;
      }
      if (pendingQuote) {
        pendingQuote = false;
        if (ch === '"') {
          field += '"';
          continue;
        }
        inQuotes = false; // that quote closed the field; handle ch below
      }
      if (inQuotes) {
        if (ch === '"') pendingQuote = true;
        else {
          if (ch === '\n') line++;
          field += ch;
        }
        continue;
      }
      if (ch === '"' && field === '') inQuotes = true;
      else if (ch === ',') {
        row.push(field);
        field = '';
      } else if (ch === '\n') {
        yield* finishRow();
        line++;
        rowStart = line;
      } else if (ch !== '\r') field += ch;
    }
  }
  if (pendingQuote) inQuotes = false;
  if (inQuotes) yield new DataError(file, rowStart, '', 'unterminated quoted field at end of file');
  else if (field !== '' || row.length > 0) yield* finishRow();
}
