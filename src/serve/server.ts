// The reward-model server (fastify): POST /v1/score, OpenRLHF's POST /get_reward, GET /health and
// GET /metrics. Every ECI input of a request is built here (cut by the ECI rules when too long, and
// the response says so) and scored by the shared RewardBatcher, so concurrent requests share
// forward passes and one pass runs at a time. Bad input is a JSON error { error: { code, message,
// field } } with a 4xx status and never reaches the model.
import * as tf from '@tensorflow/tfjs';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { ChatMessage } from '../data/chat.js';
import { eciInstance, type Truncation } from '../data/eci.js';
import type { Criterion, RubricRecord } from '../data/schema.js';
import type { CriteriaRewardModel } from '../reward/model.js';
import { promedicalReward, promedicalScores, type RewardWeights, type TierScores } from '../reward/scores.js';
import { RewardBatcher, type BatcherOptions, type Row } from './batcher.js';
import { MetricsRegistry } from './metrics.js';
import { ApiError, checkCriteria, criteriaOfJsonLabel, GET_REWARD_SCHEMA, jsonErrors, listenOn, messagesOfPrompt, responseOfQuery, SCORE_SCHEMA, type GetRewardBody, type ScoreBody } from './protocol.js';

export interface RewardServerOptions extends BatcherOptions {
  /** Records whose ids requests may name instead of sending criteria (record_id, OpenRLHF labels). */
  records?: RubricRecord[];
  /** Reward weights (alpha, beta, lambda). */
  weights?: RewardWeights;
  /** Largest request body in bytes (default 4 MiB); larger is 413. */
  maxBodyBytes?: number;
  /** Log lines (default: none). */
  log?: (line: string) => void;
}

export interface ScoredCriterion {
  id: string;
  tier: Criterion['tier'];
  p_met: number;
}

export interface ScoreResult extends TierScores {
  reward: number;
  criteria: ScoredCriterion[];
  /** Whether any ECI input of this response was cut to fit the model's input length. */
  truncated: boolean;
  /** The largest cuts over its criteria (only when truncated). */
  truncation?: { response_tokens_cut: number; response_chars_cut: number; prompt_turns_dropped: number };
}

export interface RewardServer {
  app: FastifyInstance;
  batcher: RewardBatcher;
  metrics: MetricsRegistry;
  /** Resolves once the model has scored a warm-up input (GET /health is 200 from then on). */
  ready: Promise<void>;
  /** Listens (host 127.0.0.1, port 0 by default) and returns the bound address. */
  listen(opts?: { host?: string; port?: number }): Promise<{ host: string; port: number; url: string }>;
  /** Stops accepting, finishes in-flight requests, closes. */
  close(): Promise<void>;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/** One response to score against criteria: the unit of both routes. */
interface Task {
  prompt: ChatMessage[];
  response: string;
  criteria: Criterion[];
}

/** Builds the server; it is not listening yet. The model stays the caller's (close() keeps it). */
export function createRewardServer(rm: CriteriaRewardModel, opts: RewardServerOptions = {}): RewardServer {
  const log = opts.log ?? (() => {});
  const weights = opts.weights ?? {};
  promedicalReward({ s1: 0, s2: 0, s3: 0 }, weights); // bad weights fail here, not per request
  const records = new Map((opts.records ?? []).map((r) => [r.id, r]));
  const metrics = new MetricsRegistry();
  const requests = metrics.counter('promedical_requests_total', 'HTTP requests by route and status code.');
  const errors = metrics.counter('promedical_request_errors_total', 'HTTP requests answered with an error (4xx/5xx), by route and status code.');
  const latency = metrics.histogram('promedical_request_duration_seconds', 'Request latency by route.', LATENCY_BUCKETS);
  const batchRows = metrics.histogram('promedical_batch_rows', 'ECI inputs per forward pass.', SIZE_BUCKETS);
  const batchTokens = metrics.histogram('promedical_batch_tokens', 'Padded tokens per forward pass.', SIZE_BUCKETS.map((b) => b * 64));
  const truncatedRows = metrics.counter('promedical_truncated_inputs_total', 'ECI inputs cut to fit the input length.');
  const batcher = new RewardBatcher(rm, {
    ...opts,
    onBatch: (rows, tokens, ms) => {
      batchRows.observe(rows);
      batchTokens.observe(tokens);
      opts.onBatch?.(rows, tokens, ms);
    },
  });
  metrics.gauge('promedical_queue_depth', 'Requests waiting for a forward pass.', () => batcher.depth);
  metrics.gauge('promedical_batch_running', '1 while a forward pass runs.', () => (batcher.busy ? 1 : 0));
  metrics.gauge('promedical_tensors', 'Live tfjs tensors (tf.memory().numTensors).', () => tf.memory().numTensors);
  metrics.gauge('process_resident_memory_bytes', 'Resident memory of the server process in bytes.', () => process.memoryUsage.rss());

  let warm = false;
  let closing = false;
  const app = Fastify({
    bodyLimit: opts.maxBodyBytes ?? 4 * 1024 * 1024,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false, useDefaults: false } },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    logger: false,
  });

  app.removeContentTypeParser('text/plain'); // JSON only: anything else is 415

  // While closing, answers end their connection, so keep-alive clients do not hold close() open.
  app.addHook('onSend', async (_req, reply, payload) => {
    if (closing) reply.header('connection', 'close');
    return payload;
  });

  const started = new WeakMap<FastifyRequest, number>();
  app.addHook('onRequest', async (req) => void started.set(req, performance.now()));
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const code = String(reply.statusCode);
    requests.inc({ route, code });
    if (reply.statusCode >= 400) errors.inc({ route, code });
    latency.observe((performance.now() - (started.get(req) ?? performance.now())) / 1000, { route });
  });

  jsonErrors(app, log);

  /** Aborts when the client goes away before its answer is sent. */
  const clientGone = (reply: FastifyReply): AbortSignal => {
    const ac = new AbortController();
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) ac.abort();
    });
    return ac.signal;
  };

  const requireWarm = () => {
    if (!warm) throw new ApiError(503, 'not_ready', 'the model is still loading', null, 1);
  };

  /** Scores tasks through the batcher; every input is built (and checked) before any is queued. */
  const scoreTasks = async (tasks: Task[], field: (i: number) => string, signal: AbortSignal): Promise<ScoreResult[]> => {
    const rows: Row[] = [];
    const cuts: Truncation[][] = [];
    tasks.forEach((t, i) => {
      cuts.push(
        t.criteria.map((c) => {
          let inst;
          try {
            inst = eciInstance(rm.tokenizer, t.prompt, t.response, c, { maxLength: rm.maxLength });
          } catch (err) {
            throw new ApiError(422, 'does_not_fit', (err as Error).message, field(i));
          }
          rows.push({ ids: inst.ids, tier: c.tier });
          return inst.truncation;
        }),
      );
    });
    const logits = await batcher.score(rows, signal);
    let k = 0;
    return tasks.map((t, i) => {
      const p = t.criteria.map(() => 1 / (1 + Math.exp(-logits[k++])));
      const scores = promedicalScores(t.criteria.map((c, j) => ({ tier: c.tier, weight: c.weight, met: p[j] })));
      const cut = cuts[i].filter((x) => x.responseTokensCut > 0 || x.responseCharsCut > 0 || x.promptTurnsDropped > 0);
      truncatedRows.inc({}, cut.length);
      const result: ScoreResult = { reward: promedicalReward(scores, weights), ...scores, criteria: t.criteria.map((c, j) => ({ id: c.id, tier: c.tier, p_met: p[j] })), truncated: cut.length > 0 };
      if (cut.length > 0) {
        const max = (f: (x: Truncation) => number) => Math.max(...cut.map(f));
        result.truncation = { response_tokens_cut: max((x) => x.responseTokensCut), response_chars_cut: max((x) => x.responseCharsCut), prompt_turns_dropped: max((x) => x.promptTurnsDropped) };
      }
      return result;
    });
  };

  const recordCriteria = (id: string, field: string): RubricRecord => {
    const r = records.get(id);
    if (!r) throw new ApiError(422, 'unknown_record', records.size === 0 ? `record "${id}": the server has no --records` : `no record "${id}" in --records`, field);
    if (r.criteria.length === 0) throw new ApiError(422, 'no_criteria', `record "${id}" has no criteria`, field);
    return r;
  };

  app.post<{ Body: ScoreBody }>('/v1/score', { schema: { body: SCORE_SCHEMA } }, async (req, reply) => {
    requireWarm();
    const b = req.body;
    if ((b.criteria === undefined) === (b.record_id === undefined)) throw new ApiError(400, 'invalid_request', 'give exactly one of criteria and record_id', b.criteria === undefined ? 'criteria' : 'record_id');
    const criteria = b.criteria ? checkCriteria(b.criteria, 'criteria') : recordCriteria(b.record_id!, 'record_id').criteria;
    const prompt = typeof b.prompt === 'string' ? [{ role: 'user', content: b.prompt }] : b.prompt.map((m) => ({ role: m.role, content: m.content }));
    const results = await scoreTasks(b.responses.map((response) => ({ prompt, response, criteria })), (i) => `responses[${i}]`, clientGone(reply));
    return { results };
  });

  app.post<{ Body: GetRewardBody }>('/get_reward', { schema: { body: GET_REWARD_SCHEMA } }, async (req, reply) => {
    requireWarm();
    const { query, prompts, labels } = req.body;
    if (!prompts || prompts.length !== query.length) throw new ApiError(400, 'invalid_request', `expected one prompt per query (${query.length})`, 'prompts');
    if (!labels || labels.length !== query.length) throw new ApiError(400, 'invalid_request', `expected one label per query (${query.length}): a record id of --records or JSON criteria`, 'labels');
    const tasks = query.map((q, i): Task => {
      const label = labels[i];
      if (typeof label !== 'string' || label === '') throw new ApiError(400, 'invalid_request', 'a label must be a record id or JSON criteria', `labels[${i}]`);
      const record = records.get(label);
      const criteria = record ? recordCriteria(label, `labels[${i}]`).criteria : /^\s*[[{]/.test(label) ? criteriaOfJsonLabel(label, `labels[${i}]`) : recordCriteria(label, `labels[${i}]`).criteria;
      return { prompt: messagesOfPrompt(prompts[i]), response: responseOfQuery(q, prompts[i], `query[${i}]`), criteria };
    });
    const results = await scoreTasks(tasks, (i) => `query[${i}]`, clientGone(reply));
    const rewards = results.map((r) => r.reward);
    return { rewards, scores: rewards, extra_logs: { s1: results.map((r) => r.s1), s2: results.map((r) => r.s2), s3: results.map((r) => r.s3) }, truncated: results.map((r) => r.truncated) };
  });

  app.get('/health', async (_req, reply) => {
    if (closing) return reply.code(503).send({ status: 'closing' });
    if (!warm) return reply.code(503).header('Retry-After', '1').send({ status: 'loading' });
    return { status: 'ok', queue_depth: batcher.depth };
  });

  app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(metrics.render()));

  // Warm-up: one pass through the batcher compiles the kernels before /health says ok.
  const ready = (async () => {
    const c: Criterion = { id: 'warmup', text: 'Answers the question.', tier: 'proficiency' };
    const inst = eciInstance(rm.tokenizer, [{ role: 'user', content: 'Warm-up.' }], 'Warm-up.', c, { maxLength: rm.maxLength });
    const done = batcher.score([{ ids: inst.ids, tier: c.tier }], undefined, Infinity);
    batcher.flush();
    await done;
    await batcher.drained();
    warm = true;
    log('model warmed up');
  })();
  ready.catch(() => {}); // a failed warm-up leaves /health at 503; callers awaiting `ready` see why

  return {
    app,
    batcher,
    metrics,
    ready,
    listen: (l = {}) => listenOn(app, l),
    async close() {
      closing = true;
      await app.close();
      await batcher.drained();
    },
  };
}
