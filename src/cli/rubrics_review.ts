// promedical rubrics review: the physicians' review page over a work folder (WORK/drafts.jsonl in,
// WORK/journal.jsonl appended), on 127.0.0.1 until SIGTERM or SIGINT; or, with --report K, round
// K's report as one JSON line.
import { foldJournal, Journal, readJournal } from '../rubrics/journal.js';
import { roundReport } from '../rubrics/review_report.js';
import { createReviewServer } from '../rubrics/review_server.js';
import { draftsFile, journalFile, readDrafts, rounds } from '../rubrics/review_work.js';
import type { Field } from '../train/config.js';
import { helpText, parseFlags, UsageError } from './args.js';
import { requireFile, say, untilSignal } from './inputs.js';

const FIELDS: Record<string, Field> = {
  work: { kind: 'string', nullable: true, doc: 'The work folder: reads drafts.jsonl, appends to journal.jsonl.' },
  host: { kind: 'string', doc: 'Address to listen on (loopback by default; the page has no login, so think before exposing it).' },
  port: { kind: 'int', min: 0, max: 65535, doc: 'Port (0: any free port, printed on stderr).' },
  round_size: { kind: 'int', min: 1, doc: 'Items per round: round K is items K*N .. (K+1)*N - 1 in drafts order.' },
  max_body: { kind: 'int', min: 1024, doc: 'Largest request body in bytes (larger: 413).' },
  report: { kind: 'int', min: 0, nullable: true, doc: 'Print round K\'s report (pass rate, rates per tier, kappa, time per item) as JSON and exit; no server.' },
};
const DEFAULTS = { work: null as string | null, host: '127.0.0.1', port: 8080, round_size: 500, max_body: 1024 * 1024, report: null as number | null };

const ABOUT = `The review page for physicians (docs/rubrics.md): each drafted criterion accepted, edited or
rejected, each candidate graded met / not met, keyboard-driven. Every decision is appended to
WORK/journal.jsonl and fsynced before the page shows it saved. Prints "listening on URL" on
stderr; on SIGTERM or SIGINT one JSON line on stdout.`;

export async function rubricsReview(argv: string[]): Promise<void> {
  const parsed = parseFlags('rubrics review', argv, FIELDS, ['work']);
  if (parsed.help) return void console.log(helpText('promedical rubrics review [flags]', ABOUT, FIELDS, DEFAULTS));
  const a = { ...DEFAULTS, ...parsed.values } as typeof DEFAULTS;
  if (!a.work) throw new UsageError('--work is required (the folder `rubrics draft` wrote drafts.jsonl into)');
  const work = a.work;
  const items = await readDrafts(requireFile('--work', draftsFile(work)));
  const r = rounds(items, a.round_size);
  if (a.report !== null) {
    if (a.report >= r.count) throw new UsageError(`--report ${a.report}: there are ${r.count} rounds of ${a.round_size} items (0..${r.count - 1})`);
    return void console.log(JSON.stringify(roundReport(a.report, r.items(a.report), foldJournal(readJournal(journalFile(work))))));
  }
  const log = say('rubrics review');
  const journal = new Journal(journalFile(work));
  const before = journal.count;
  const server = createReviewServer(items, journal, { roundSize: a.round_size, maxBodyBytes: a.max_body, log });
  const stopped = untilSignal();
  try {
    const { url } = await server.listen({ host: a.host, port: a.port });
    log(`listening on ${url} (${items.length} items in ${r.count} round(s) of ${a.round_size}; ${before} journal entries so far)`);
    const signal = await stopped.signal;
    await server.close();
    console.log(JSON.stringify({ stopped: signal, journal: journalFile(work), entries_written: journal.count - before, entries: journal.count }));
  } finally {
    stopped.release();
  }
}
