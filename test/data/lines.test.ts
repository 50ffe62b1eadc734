// Streaming line readers: a UTF-8 byte order mark at the start of a JSON Lines or CSV file is
// dropped (only there), and one huge line is read in linear time.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { csvRows, jsonLines } from '../../src/data/lines.js';
import { DataError } from '../../src/data/schema.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-lines-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const BOM = '\uFEFF';

async function collect<T>(gen: AsyncGenerator<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of gen) out.push(x);
  return out;
}

test('JSON Lines: a byte order mark at the start is dropped; one later in the file is still an error', async () => {
  const file = path.join(tmp, 'bom.jsonl');
  fs.writeFileSync(file, `${BOM}{"id": "a"}\n\n${BOM}{"id": "c"}\n{"id": "d"}\n`);
  const items = await collect(jsonLines(file));
  assert.is(items.length, 3);
  assert.equal(items[0], { value: { id: 'a' }, line: 1 });
  assert.instance(items[1], DataError);
  assert.match((items[1] as DataError).message, new RegExp(`^${file}:3: not valid JSON`));
  assert.equal(items[2], { value: { id: 'd' }, line: 4 });
  // The same bytes as written by an editor that adds a BOM: EF BB BF.
  const bytes = path.join(tmp, 'bom-bytes.jsonl');
  fs.writeFileSync(bytes, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"x": 1}\r\n{"x": 2}\r\n')]));
  assert.equal(await collect(jsonLines(bytes)), [{ value: { x: 1 }, line: 1 }, { value: { x: 2 }, line: 2 }]);
});

test('CSV: a byte order mark at the start is not part of the first header name', async () => {
  const file = path.join(tmp, 'bom.csv');
  fs.writeFileSync(file, `${BOM}Question,Answer\n"Is 38 C a fever?","No, ""not quite"""\n`);
  const rows = await collect(csvRows(file));
  assert.equal(rows, [{ value: { Question: 'Is 38 C a fever?', Answer: 'No, "not quite"' }, line: 2 }]);
});

test('one 50 MB line is read whole, in linear time, and the line after it keeps its number', async () => {
  const file = path.join(tmp, 'huge.jsonl');
  const text = 'The patient reports chest pain. '.repeat(1_600_000); // 51.2 MB
  fs.writeFileSync(file, JSON.stringify({ id: 'huge', text }) + '\n' + JSON.stringify({ id: 'next' }) + '\n');
  const t0 = Date.now();
  const items = (await collect(jsonLines(file))) as { value: { id: string; text?: string }; line: number }[];
  const seconds = (Date.now() - t0) / 1000;
  assert.equal(items.map((x) => [x.value.id, x.line]), [['huge', 1], ['next', 2]]);
  assert.is(items[0].value.text!.length, text.length);
  assert.ok(items[0].value.text === text);
  assert.ok(seconds < 30, `read in ${seconds} s`);
});

test.run();
