// The review server (fastify): the review page and its JSON API over one work folder. Every
// decision is appended to the journal and fsynced before its answer, so what the page shows as
// saved is on disk; the folded journal in memory answers the reads. Bad input is a JSON error
// { error: { code, message, field } } with a 4xx status and writes nothing.
import Fastify, { type FastifyReply } from 'fastify';
import { TIERS } from '../data/schema.js';
import { ApiError, jsonErrors, listenOn } from '../serve/protocol.js';
import type { DraftItem } from './items.js';
import { ACTIONS, emptyState, foldEntry, foldJournal, readJournal, type ItemState, type Journal, type JournalEntry, type NewEntry } from './journal.js';
import { PAGE_CSS, PAGE_HTML, PAGE_JS } from './review_page.js';
import { roundReport } from './review_report.js';
import { rounds as roundsOf } from './review_work.js';

export interface ReviewServerOptions {
  /** Items per round (default 500). */
  roundSize?: number;
  /** Largest request body in bytes (default 1 MiB); larger is 413. */
  maxBodyBytes?: number;
  /** Log lines (default: none). */
  log?: (line: string) => void;
}

export interface ReviewServer {
  listen(opts?: { host?: string; port?: number }): Promise<{ url: string }>;
  /** Stops accepting, finishes in-flight requests, closes the journal. */
  close(): Promise<void>;
  /** The fastify app (for inject in tests). */
  app: ReturnType<typeof Fastify>;
}

const REVIEWER = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$' };
const ID = { type: 'string', minLength: 1, maxLength: 1000 };
const body = (required: string[], properties: Record<string, unknown>) => ({ type: 'object', required, additionalProperties: false, properties });

const DECISION_SCHEMA = body(['reviewer', 'item', 'criterion', 'action'], {
  reviewer: REVIEWER,
  item: ID,
  criterion: ID,
  action: { type: 'string', enum: [...ACTIONS] },
  text: { type: 'string', minLength: 1, maxLength: 10000 },
  tier: { type: 'string', enum: [...TIERS] },
  weight: { type: 'number', minimum: 0, maximum: 1e6 },
});
const GRADE_SCHEMA = body(['reviewer', 'item', 'response', 'criterion', 'met'], { reviewer: REVIEWER, item: ID, response: ID, criterion: ID, met: { type: 'boolean' } });
const DONE_SCHEMA = body(['reviewer', 'item', 'seconds'], { reviewer: REVIEWER, item: ID, seconds: { type: 'number', minimum: 0, maximum: 7 * 86400 } });
const REVIEWER_QUERY = { type: 'object', required: ['reviewer'], properties: { reviewer: REVIEWER } };

interface Decision { reviewer: string; item: string; criterion: string; action: 'accept' | 'edit' | 'reject'; text?: string; tier?: 'proficiency' | 'excellence' | 'safety'; weight?: number }
interface Grade { reviewer: string; item: string; response: string; criterion: string; met: boolean }
interface Done { reviewer: string; item: string; seconds: number }

/** One reviewer's state of an item as JSON for the page. */
function stateJson(s: ItemState) {
  return {
    decisions: Object.fromEntries([...s.decisions].map(([c, d]) => [c, { action: d.action, ...(d.edit ? { edit: d.edit } : {}), seq: d.seq, at: d.at }])),
    grades: Object.fromEntries([...s.grades].map(([r, g]) => [r, Object.fromEntries([...g].map(([c, e]) => [c, e.met]))])),
    done: s.done.length > 0,
    seconds: s.done.reduce((sum, e) => sum + e.seconds, 0),
  };
}

/** What an item still lacks before it can be finished: undecided criteria, missing grades of the
 * criteria it keeps. */
function missing(it: DraftItem, s: ItemState): string[] {
  const out: string[] = [];
  for (const c of it.criteria) {
    const d = s.decisions.get(c.id);
    if (!d) out.push(`a decision on ${c.id}`);
    else if (d.action !== 'reject') for (const cand of it.candidates) if (!s.grades.get(cand.id)?.has(c.id)) out.push(`a grade of ${cand.id} on ${c.id}`);
  }
  return out;
}

/** Builds the server over `items` (drafts order) and an open journal, which it closes on
 * close(); not listening yet. */
export function createReviewServer(items: DraftItem[], journal: Journal, opts: ReviewServerOptions = {}): ReviewServer {
  const log = opts.log ?? (() => {});
  const rounds = roundsOf(items, opts.roundSize ?? 500);
  const index = new Map(items.map((it, i) => [it.id, i]));
  const folded = foldJournal(readJournal(journal.file));
  const stateOf = (reviewer: string, item: string) => folded.get(reviewer)?.get(item) ?? emptyState();

  const app = Fastify({
    bodyLimit: opts.maxBodyBytes ?? 1024 * 1024,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false, useDefaults: false } },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    logger: false,
  });
  // JSON only: a cross-site form or text/plain POST (no CORS preflight) is refused with 415.
  app.removeContentTypeParser('text/plain');

  jsonErrors(app, log);

  const itemOf = (id: string, status = 400): DraftItem => {
    const i = index.get(id);
    if (i === undefined) throw new ApiError(status, 'unknown_item', `no item "${id}" in drafts.jsonl`, 'item');
    return items[i];
  };
  const criterionOf = (it: DraftItem, id: string) => {
    const c = it.criteria.find((x) => x.id === id);
    if (!c) throw new ApiError(400, 'unknown_criterion', `item "${it.id}" has no criterion "${id}"`, 'criterion');
    return c;
  };
  const roundOf = (k: string) => {
    const n = Number(k);
    if (!/^\d+$/.test(k) || n >= rounds.count) throw new ApiError(404, 'unknown_round', `no round ${k} (rounds 0..${rounds.count - 1} of ${rounds.size} items)`, 'round');
    return n;
  };

  /** Appends and folds one entry; a failed write is a 500 and changes nothing. */
  const record = (entry: NewEntry): JournalEntry => {
    let saved: JournalEntry;
    try {
      saved = journal.append(entry);
    } catch (err) {
      log(`journal write failed: ${(err as Error).message}`);
      throw new ApiError(500, 'journal_write_failed', `the decision was not saved: ${(err as Error).message}`, null);
    }
    foldEntry(folded, saved);
    return saved;
  };

  const security = (reply: FastifyReply) =>
    reply
      .header('content-security-policy', "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'no-store');
  app.get('/', async (_req, reply) => security(reply).type('text/html; charset=utf-8').send(PAGE_HTML));
  app.get('/review.js', async (_req, reply) => security(reply).type('text/javascript; charset=utf-8').send(PAGE_JS));
  app.get('/review.css', async (_req, reply) => security(reply).type('text/css; charset=utf-8').send(PAGE_CSS));

  app.get('/health', async () => ({ status: 'ok', items: items.length, rounds: rounds.count, journal_entries: journal.count }));

  app.get<{ Querystring: { reviewer?: string } }>('/api/rounds', { schema: { querystring: { type: 'object', properties: { reviewer: REVIEWER } } } }, async (req) => {
    const r = req.query.reviewer;
    return {
      round_size: rounds.size,
      items: items.length,
      rounds: Array.from({ length: rounds.count }, (_, k) => {
        const its = rounds.items(k);
        const done = r === undefined ? null : its.filter((it) => stateOf(r, it.id).done.length > 0).length;
        return { round: k, first: k * rounds.size, items: its.length, done };
      }),
    };
  });

  app.get<{ Params: { k: string }; Querystring: { reviewer: string } }>('/api/rounds/:k/items', { schema: { querystring: REVIEWER_QUERY } }, async (req) => {
    const k = roundOf(req.params.k);
    return {
      round: k,
      items: rounds.items(k).map((it) => {
        const s = stateOf(req.query.reviewer, it.id);
        return { id: it.id, index: index.get(it.id), criteria: it.criteria.length, decided: it.criteria.filter((c) => s.decisions.has(c.id)).length, done: s.done.length > 0 };
      }),
    };
  });

  app.get<{ Params: { k: string } }>('/api/rounds/:k/report', async (req) => {
    const k = roundOf(req.params.k);
    return roundReport(k, rounds.items(k), folded);
  });

  app.get<{ Params: { id: string }; Querystring: { reviewer: string } }>('/api/items/:id', { schema: { querystring: REVIEWER_QUERY } }, async (req) => {
    const it = itemOf(req.params.id, 404);
    const i = index.get(it.id)!;
    const { id, prompt, category, specialty, candidates, criteria } = it;
    return { item: { id, prompt, category, specialty, candidates, criteria }, index: i, round: rounds.of(i), position: i % rounds.size, round_items: rounds.items(rounds.of(i)).length, state: stateJson(stateOf(req.query.reviewer, it.id)) };
  });

  app.post<{ Body: Decision }>('/api/decisions', { schema: { body: DECISION_SCHEMA } }, async (req) => {
    const b = req.body;
    const it = itemOf(b.item);
    const c = criterionOf(it, b.criterion);
    const round = rounds.of(index.get(it.id)!);
    if (b.action !== 'edit') {
      const stray = (['text', 'tier', 'weight'] as const).find((k) => b[k] !== undefined);
      if (stray) throw new ApiError(400, 'invalid_request', `${stray} belongs to an edit, not to ${b.action}`, stray);
      return { saved: record({ type: 'decision', reviewer: b.reviewer, round, item: it.id, criterion: c.id, action: b.action }) };
    }
    if (b.text === undefined || b.text.trim() === '') throw new ApiError(400, 'invalid_request', 'an edit needs the criterion\'s new text', 'text');
    const tier = b.tier ?? c.tier;
    const weight = tier === 'proficiency' ? (b.weight ?? c.weight) : undefined;
    const edit = { text: b.text.trim(), tier, ...(weight === undefined ? {} : { weight }) };
    return { saved: record({ type: 'decision', reviewer: b.reviewer, round, item: it.id, criterion: c.id, action: 'edit', edit }) };
  });

  app.post<{ Body: Grade }>('/api/grades', { schema: { body: GRADE_SCHEMA } }, async (req) => {
    const b = req.body;
    const it = itemOf(b.item);
    const c = criterionOf(it, b.criterion);
    if (!it.candidates.some((x) => x.id === b.response)) throw new ApiError(400, 'unknown_response', `item "${it.id}" has no candidate "${b.response}"`, 'response');
    return { saved: record({ type: 'grade', reviewer: b.reviewer, round: rounds.of(index.get(it.id)!), item: it.id, response: b.response, criterion: c.id, met: b.met }) };
  });

  app.post<{ Body: Done }>('/api/done', { schema: { body: DONE_SCHEMA } }, async (req) => {
    const b = req.body;
    const it = itemOf(b.item);
    const lacks = missing(it, stateOf(b.reviewer, it.id));
    if (lacks.length > 0) throw new ApiError(409, 'incomplete', `item "${it.id}" still needs ${lacks.length === 1 ? lacks[0] : `${lacks.length} things: ${lacks.slice(0, 3).join(', ')}${lacks.length > 3 ? ', ...' : ''}`}`, 'item');
    return { saved: record({ type: 'item-done', reviewer: b.reviewer, round: rounds.of(index.get(it.id)!), item: it.id, seconds: b.seconds }) };
  });

  return {
    app,
    listen: async (l = {}) => ({ url: (await listenOn(app, l)).url }),
    async close() {
      await app.close();
      journal.close();
    },
  };
}
