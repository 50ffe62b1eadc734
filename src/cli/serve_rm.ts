// promedical serve-rm: serves a trained criteria-injected reward model over HTTP (POST /v1/score,
// OpenRLHF's POST /get_reward, GET /health, GET /metrics) until SIGTERM or SIGINT, then stops
// accepting, finishes what is in flight and exits 0 (1 when --shutdown-timeout runs out first).
import * as path from 'node:path';
import { loadRecords } from '../data/records.js';
import type { RubricRecord } from '../data/schema.js';
import { initBackend } from '../ops/backend.js';
import { CriteriaRewardModel } from '../reward/model.js';
import { createRewardServer } from '../serve/server.js';
import type { Field } from '../train/config.js';
import { flagOf, helpText, parseFlags, userCwd } from './args.js';
import { requireFile, requireRewardModelDir, say, untilSignal } from './inputs.js';

const FIELDS: Record<string, Field> = {
  rm: { kind: 'string', doc: 'The reward model folder (train-rm writes <out>/reward-model).' },
  records: { kind: 'string', nullable: true, doc: 'Records whose ids requests may name (record_id, OpenRLHF labels); repeat the flag for more files.' },
  format: { kind: 'enum', values: ['promedical', 'healthbench', 'kqa', 'kqa-nli', 'rar', 'ultramedical'], doc: 'Format of --records.' },
  host: { kind: 'string', doc: 'Address to listen on (loopback by default; 0.0.0.0 exposes it).' },
  port: { kind: 'int', min: 0, max: 65535, doc: 'Port (0: any free port, printed on stderr).' },
  max_batch_tokens: { kind: 'int', min: 0, doc: 'Most padded tokens of one forward pass (concurrent requests merge up to this; 0: no batching, one request per pass).' },
  max_wait_ms: { kind: 'number', min: 0, doc: 'Longest wait for more requests before a forward pass starts.' },
  max_queue: { kind: 'int', min: 1, doc: 'Most requests waiting; one more is answered 503 with Retry-After.' },
  request_timeout: { kind: 'number', min: 0, exclusiveMin: true, doc: 'Seconds a request may wait for its scores before a 504.' },
  max_body: { kind: 'int', min: 1024, doc: 'Largest request body in bytes (larger: 413).' },
  shutdown_timeout: { kind: 'number', min: 0, exclusiveMin: true, doc: 'Seconds to finish in-flight requests after SIGTERM before giving up (exit 1).' },
  max_length: { kind: 'int', min: 16, nullable: true, doc: "Longest judge input in tokens (default: the RM's own); longer inputs are cut by the ECI rules." },
  alpha: { kind: 'number', min: 0, max: 1, exclusiveMax: true, doc: 'Weight of S2 in the reward (alpha < 1).' },
  beta: { kind: 'number', min: 0, exclusiveMin: true, doc: 'Headroom above 1 of S1 + alpha S2.' },
  lambda: { kind: 'number', min: 0, doc: 'Penalty per safety violation (>= 1 + beta).' },
  backend: { kind: 'enum', values: ['auto', 'tensorflow', 'wasm', 'cpu'], doc: 'tfjs backend.' },
};
const DEFAULTS = {
  rm: 'runs/train-rm/reward-model',
  records: null as string | null,
  format: 'promedical',
  host: '127.0.0.1',
  port: 8000,
  max_batch_tokens: 8192,
  max_wait_ms: 5,
  max_queue: 256,
  request_timeout: 60,
  max_body: 4 * 1024 * 1024,
  shutdown_timeout: 30,
  max_length: null as number | null,
  alpha: 0.1,
  beta: 0.5,
  lambda: 1.5,
  backend: 'auto',
};

const ABOUT = `Serves the reward model over HTTP: POST /v1/score, POST /get_reward (OpenRLHF's --remote_rm_url),
GET /health, GET /metrics (docs/serving.md). Prints "listening on URL" on stderr once warmed up; on
SIGTERM or SIGINT finishes in-flight requests and prints one JSON line of totals on stdout.`;

/** Every --records value (the flag may repeat), and argv without them. */
function splitRecords(argv: string[]): { files: string[]; rest: string[] } {
  const files: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--records' && i + 1 < argv.length) files.push(argv[++i]);
    else if (argv[i].startsWith('--records=')) files.push(argv[i].slice('--records='.length));
    else rest.push(argv[i]);
  }
  return { files, rest };
}

export async function serveRm(argv: string[]): Promise<void> {
  const { files, rest } = splitRecords(argv);
  const parsed = parseFlags('serve-rm', rest, FIELDS, ['rm', 'records']);
  if (parsed.help) return void console.log(helpText('promedical serve-rm [flags]', ABOUT, FIELDS, DEFAULTS));
  const a = { ...DEFAULTS, rm: path.resolve(userCwd(), DEFAULTS.rm), ...parsed.values } as typeof DEFAULTS;
  const recordFiles = files.length > 0 ? files.map((f) => path.resolve(userCwd(), f)) : a.records ? [a.records] : [];
  requireRewardModelDir('--rm', a.rm);
  recordFiles.forEach((f) => requireFile(flagOf('records'), f));
  const log = say('serve-rm');
  const records: RubricRecord[] = [];
  for (const f of recordFiles) records.push(...(await loadRecords(f, { format: a.format as 'promedical' })));
  await initBackend(a.backend as 'auto', { log: () => {} });
  const rm = await CriteriaRewardModel.load(a.rm, { maxLength: a.max_length ?? undefined });
  let batches = 0;
  const server = createRewardServer(rm, {
    records,
    weights: { alpha: a.alpha, beta: a.beta, lambda: a.lambda },
    maxBatchTokens: a.max_batch_tokens,
    maxWaitMs: a.max_wait_ms,
    maxQueue: a.max_queue,
    requestTimeoutMs: a.request_timeout * 1000,
    maxBodyBytes: a.max_body,
    log,
    onBatch: () => void batches++,
  });
  const stopped = untilSignal();
  try {
    await server.ready;
    const { url } = await server.listen({ host: a.host, port: a.port });
    log(`listening on ${url} (${records.length} records, max ${rm.maxLength} tokens per input)`);
    const signal = await stopped.signal;
    log(`${signal}: finishing in-flight requests (at most ${a.shutdown_timeout} s)`);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), a.shutdown_timeout * 1000)));
    const how = await Promise.race([server.close().then(() => 'closed' as const), timedOut]);
    clearTimeout(timer);
    if (how === 'timeout') {
      server.app.server.closeAllConnections();
      throw new Error(`in-flight requests did not finish within --shutdown-timeout ${a.shutdown_timeout} s`);
    }
    const served = server.metrics.render().match(/^promedical_requests_total\{[^}]*\} \d+$/gm) ?? [];
    console.log(JSON.stringify({ stopped: signal, requests: served.reduce((n, l) => n + Number(l.split(' ').pop()), 0), batches }));
  } finally {
    stopped.release();
    rm.dispose();
  }
}
