// Load and soak of `promedical serve-rm` on loopback: C concurrent clients send N requests each in
// OpenRLHF's shape (POST /get_reward, one sample per request, as its agent posts each sample when
// it finishes), against the server in a child process; then the same load against an unbatched
// server (--max-batch-tokens 0) for throughput. Memory is read from the server's /metrics
// (process_resident_memory_bytes, promedical_tensors) after a warm-up and after every `--every`
// requests. Not part of npm test.
//
//   npx tsx bench/serve_rm.ts [--rm DIR] [--clients 32] [--requests 500] [--unbatched-requests 100]
//                             [--warmup 20] [--every 2000]
//
// --rm: a reward model folder (default: the tiny model, untrained: the same work per request as a
// trained tiny RM). Requests cycle through the bundled test records' responses. Prints a table on
// stderr and one JSON line on stdout.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CriteriaRewardModel, ensureTinyQwen3, initBackend, loadQwen3, loadRecords, loadTokenizer, type RubricRecord } from '../src/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name}: expected a positive whole number, got ${args[i + 1]}`);
  return v;
};
const rmFlag = args.includes('--rm') ? path.resolve(args[args.indexOf('--rm') + 1]) : undefined;
const CLIENTS = flag('--clients', 32);
const REQUESTS = flag('--requests', 500);
const UNBATCHED = flag('--unbatched-requests', 100);
const WARMUP = flag('--warmup', 20);
const EVERY = flag('--every', 2000);
const RECORDS = path.join(ROOT, 'data', 'test.jsonl');

interface Server { url: string; child: ChildProcess; exited: Promise<number | null> }

/** serve-rm in a child process; resolves once it prints its address (after its warm-up pass). */
function startServer(rmDir: string, extra: string[]): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'serve-rm', '--rm', rmDir, '--records', RECORDS, '--port', '0', '--backend', 'wasm', '--max-queue', String(4 * CLIENTS), ...extra], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) resolve({ url: m[1], child, exited });
    });
    void exited.then((code) => reject(new Error(`serve-rm exited (${code}) before listening:\n${err}`)));
  });
}

async function stopServer(s: Server): Promise<void> {
  s.child.kill('SIGTERM');
  const code = await s.exited;
  if (code !== 0) throw new Error(`serve-rm exited with ${code} after SIGTERM`);
}

/** The server's RSS (MB) and live tensors, from its /metrics. */
async function serverMemory(url: string): Promise<{ rssMb: number; tensors: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const read = (name: string) => Number(new RegExp(`^${name} (\\d+(?:\\.\\d+)?)$`, 'm').exec(text)?.[1] ?? NaN);
  return { rssMb: read('process_resident_memory_bytes') / 2 ** 20, tensors: read('promedical_tensors') };
}

/** OpenRLHF's request bodies: query = the chat-templated prompt + the response, label = the record id. */
function bodies(records: RubricRecord[], applyChatTemplate: (r: RubricRecord) => string): string[] {
  return records.flatMap((r) => {
    const prompt = applyChatTemplate(r);
    return r.responses.map((x) => JSON.stringify({ query: [`${prompt}${x.text}<|im_end|>`], prompts: [prompt], labels: [r.id] }));
  });
}

interface LoadResult { requests: number; errors: number; seconds: number; latenciesMs: number[]; firstError?: string }

/**
 * `clients` loops, each sending `perClient` requests one after another (body i of client c:
 * bodies[(c * perClient + i) % n]). `onProgress` runs after each `every` completed requests.
 */
async function load(url: string, all: string[], clients: number, perClient: number, onProgress?: (done: number) => Promise<void>): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  let errors = 0;
  let done = 0;
  let firstError: string | undefined;
  let progress = Promise.resolve();
  const t0 = performance.now();
  const client = async (c: number) => {
    for (let i = 0; i < perClient; i++) {
      const body = all[(c * perClient + i) % all.length];
      const start = performance.now();
      try {
        const r = await fetch(`${url}/get_reward`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        const answer = (await r.json()) as { rewards?: unknown[] };
        if (r.status !== 200 || !Array.isArray(answer.rewards) || answer.rewards.length !== 1 || typeof answer.rewards[0] !== 'number') {
          errors++;
          firstError ??= `HTTP ${r.status}: ${JSON.stringify(answer).slice(0, 200)}`;
        }
      } catch (e) {
        errors++;
        firstError ??= (e as Error).message;
      }
      latenciesMs.push(performance.now() - start);
      done++;
      if (onProgress && done % EVERY === 0) progress = progress.then(() => onProgress(done));
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, c) => client(c)));
  const seconds = (performance.now() - t0) / 1000;
  await progress;
  return { requests: done, errors, seconds, latenciesMs, firstError };
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const summary = (r: LoadResult) => {
  const s = [...r.latenciesMs].sort((a, b) => a - b);
  return { requests: r.requests, errors: r.errors, seconds: +r.seconds.toFixed(2), rps: +(r.requests / r.seconds).toFixed(1), p50_ms: +quantile(s, 0.5).toFixed(1), p95_ms: +quantile(s, 0.95).toFixed(1), p99_ms: +quantile(s, 0.99).toFixed(1) };
};

await initBackend('wasm', { log: () => {} });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-bench-serve-'));
let rmDir = rmFlag;
if (!rmDir) {
  const dir = await ensureTinyQwen3(undefined, { log: () => {} });
  const rm = new CriteriaRewardModel(await loadQwen3(dir), loadTokenizer(dir), { maxLength: 256, seed: 1 });
  rmDir = path.join(tmp, 'rm');
  await rm.save(rmDir);
  rm.dispose();
}
const tokenizer = loadTokenizer();
const records = await loadRecords(RECORDS);
const all = bodies(records, (r) => tokenizer.applyChatTemplate(r.prompt, { addGenerationPrompt: true }));
const log = (line: string) => process.stderr.write(`[bench-serve] ${line}\n`);

try {
  log(`batched server (defaults: --max-batch-tokens 8192 --max-wait-ms 5), ${CLIENTS} clients x ${REQUESTS} requests, ${all.length} distinct bodies`);
  const batched = await startServer(rmDir, []);
  await load(batched.url, all, CLIENTS, WARMUP);
  const memory = [{ after: 0, ...(await serverMemory(batched.url)) }];
  const main = await load(batched.url, all, CLIENTS, REQUESTS, async (done) => void memory.push({ after: done, ...(await serverMemory(batched.url)) }));
  if (memory.at(-1)!.after !== main.requests) memory.push({ after: main.requests, ...(await serverMemory(batched.url)) });
  await stopServer(batched);

  log(`unbatched server (--max-batch-tokens 0), ${CLIENTS} clients x ${UNBATCHED} requests`);
  const unbatched = await startServer(rmDir, ['--max-batch-tokens', '0']);
  await load(unbatched.url, all, CLIENTS, WARMUP);
  const single = await load(unbatched.url, all, CLIENTS, UNBATCHED);
  await stopServer(unbatched);

  const b = summary(main), u = summary(single);
  const [first, last] = [memory[0], memory.at(-1)!];
  process.stderr.write(`
| server | requests | errors | req/s | p50 ms | p95 ms | p99 ms |
|---|---|---|---|---|---|---|
| batched | ${b.requests} | ${b.errors} | ${b.rps} | ${b.p50_ms} | ${b.p95_ms} | ${b.p99_ms} |
| unbatched | ${u.requests} | ${u.errors} | ${u.rps} | ${u.p50_ms} | ${u.p95_ms} | ${u.p99_ms} |

batching: ${(b.rps / u.rps).toFixed(2)}x the unbatched throughput
server memory after N requests: ${memory.map((m) => `${m.after}: ${m.rssMb.toFixed(0)} MB, ${m.tensors} tensors`).join('; ')}
${main.firstError ? `first error (batched): ${main.firstError}\n` : ''}${single.firstError ? `first error (unbatched): ${single.firstError}\n` : ''}`);
  console.log(JSON.stringify({
    cpu: os.cpus()[0]?.model, cores: os.availableParallelism(), rm: rmFlag ?? 'tiny (untrained)', clients: CLIENTS,
    batched: b, unbatched: u, batching_speedup: +(b.rps / u.rps).toFixed(2),
    memory: { rss_mb_first: +first.rssMb.toFixed(1), rss_mb_last: +last.rssMb.toFixed(1), tensors_first: first.tensors, tensors_last: last.tensors, samples: memory },
  }));
  if (b.errors + u.errors > 0) process.exitCode = 1;
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
