// Dynamic batching of reward-model rows: the ECI inputs of concurrent requests are merged into one
// forward pass of at most `maxBatchTokens` padded tokens, started once that many are waiting or the
// oldest has waited `maxWaitMs`. One batch runs at a time; the queue of waiting requests is bounded
// (a full queue refuses with 503 and Retry-After) and a request that waits past its timeout, or
// whose client went away, leaves the queue without touching the others.
import { padBatch, disposeBatch } from '../data/batch.js';
import type { Tier } from '../data/schema.js';
import type { CriteriaRewardModel } from '../reward/model.js';
import { ApiError } from './protocol.js';

export interface BatcherOptions {
  /** Most padded tokens (rows x longest row) of one forward pass (default 8192). 0: no batching,
   * each request's rows alone in a pass of their own (the unbatched baseline). */
  maxBatchTokens?: number;
  /** Longest wait for more rows before a batch starts, in ms (default 5). */
  maxWaitMs?: number;
  /** Most requests waiting (default 256); one more is refused with 503. */
  maxQueue?: number;
  /** A request not scored within this many ms fails with 504 (default 60000). */
  requestTimeoutMs?: number;
  /** Called after each forward pass with its rows and padded tokens. */
  onBatch?: (rows: number, tokens: number, ms: number) => void;
}

/** One ECI input: its token ids and the tier whose head scores it. */
export interface Row {
  ids: number[];
  tier: Tier;
}

interface Job {
  rows: Row[];
  /** Next row not yet taken into a batch. */
  next: number;
  /** Rows scored so far. */
  done: number;
  logits: Float32Array;
  resolve: (logits: Float32Array) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
  settled: boolean;
}

export class RewardBatcher {
  readonly maxBatchTokens: number;
  readonly maxWaitMs: number;
  readonly maxQueue: number;
  readonly requestTimeoutMs: number;
  private readonly queue: Job[] = [];
  private running = false;
  private waitTimer: NodeJS.Timeout | null = null;
  private startSoon: NodeJS.Immediate | null = null;
  private idle: (() => void)[] = [];

  constructor(
    readonly rm: CriteriaRewardModel,
    private readonly opts: BatcherOptions = {},
  ) {
    this.maxBatchTokens = opts.maxBatchTokens ?? 8192;
    this.maxWaitMs = opts.maxWaitMs ?? 5;
    this.maxQueue = opts.maxQueue ?? 256;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 60_000;
  }

  /** Requests waiting for (part of) their rows to enter a batch. */
  get depth(): number {
    return this.queue.length;
  }

  /** Whether a forward pass is running now. */
  get busy(): boolean {
    return this.running;
  }

  /**
   * Logits of `rows`, in order. `signal` aborts the request (its client went away): its rows not
   * yet in a batch are dropped. Past `timeoutMs` (Infinity: never) it fails with 504.
   */
  score(rows: Row[], signal?: AbortSignal, timeoutMs = this.requestTimeoutMs): Promise<Float32Array> {
    if (rows.length === 0) return Promise.resolve(new Float32Array(0));
    if (this.queue.length >= this.maxQueue) {
      return Promise.reject(new ApiError(503, 'queue_full', `the queue holds ${this.maxQueue} waiting requests; retry later`, null, 1));
    }
    return new Promise((resolve, reject) => {
      const job: Job = {
        rows,
        next: 0,
        done: 0,
        logits: new Float32Array(rows.length),
        resolve,
        reject,
        settled: false,
        timer: Number.isFinite(timeoutMs) ? setTimeout(() => this.fail(job, new ApiError(504, 'timeout', `not scored within ${timeoutMs} ms (--request-timeout)`)), timeoutMs) : undefined,
      };
      signal?.addEventListener('abort', () => this.fail(job, new ApiError(499, 'client_closed', 'the client closed the connection')), { once: true });
      this.queue.push(job);
      this.schedule();
    });
  }

  /** Starts the next forward pass now, without waiting for more rows. */
  flush(): void {
    if (this.waitTimer) clearTimeout(this.waitTimer);
    this.waitTimer = null;
    void this.runBatch();
  }

  /** Resolves once nothing is queued or running. */
  drained(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private fail(job: Job, err: Error): void {
    if (job.settled) return;
    job.settled = true;
    clearTimeout(job.timer);
    const at = this.queue.indexOf(job);
    if (at >= 0) this.queue.splice(at, 1);
    job.reject(err);
    this.notifyIdle();
  }

  private pendingTokens(): number {
    let rows = 0, longest = 0;
    for (const j of this.queue) {
      for (let i = j.next; i < j.rows.length; i++) {
        rows++;
        longest = Math.max(longest, j.rows[i].ids.length);
        if (rows * longest >= this.maxBatchTokens) return rows * longest;
      }
    }
    return rows * longest;
  }

  private schedule(): void {
    if (this.running || this.queue.length === 0) return;
    if (this.maxBatchTokens === 0 || this.pendingTokens() >= this.maxBatchTokens || this.maxWaitMs <= 0) {
      // Started on the next turn of the event loop, so that requests already received queue first.
      if (this.waitTimer) clearTimeout(this.waitTimer);
      this.waitTimer = null;
      if (!this.startSoon) this.startSoon = setImmediate(() => ((this.startSoon = null), void this.runBatch()));
    } else if (!this.waitTimer && !this.startSoon) {
      this.waitTimer = setTimeout(() => {
        this.waitTimer = null;
        void this.runBatch();
      }, this.maxWaitMs);
    }
  }

  /** Rows for the next pass, FIFO, while rows x longest stays within the budget (at least one);
   * unbatched: the first request's rows. */
  private take(): { job: Job; index: number }[] {
    const out: { job: Job; index: number }[] = [];
    if (this.maxBatchTokens === 0) {
      const job = this.queue.find((j) => j.next < j.rows.length);
      while (job && job.next < job.rows.length) out.push({ job, index: job.next++ });
      return out;
    }
    let longest = 0;
    for (const job of this.queue) {
      while (job.next < job.rows.length) {
        const len = Math.max(longest, job.rows[job.next].ids.length);
        if (out.length > 0 && (out.length + 1) * len > this.maxBatchTokens) return out;
        longest = len;
        out.push({ job, index: job.next++ });
      }
    }
    return out;
  }

  private async runBatch(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const taken = this.take();
        // A job whose rows are all taken leaves the queue (it no longer waits).
        for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i].next >= this.queue[i].rows.length) this.queue.splice(i, 1);
        if (taken.length === 0) break;
        const started = performance.now();
        const batch = padBatch(taken.map((t) => t.job.rows[t.index].ids), this.rm.tokenizer.padTokenId);
        const tokens = batch.inputIds.shape[0] * batch.inputIds.shape[1];
        try {
          const logits = this.rm.score(batch, taken.map((t) => t.job.rows[t.index].tier));
          const values = await logits.data();
          logits.dispose();
          taken.forEach((t, i) => {
            t.job.logits[t.index] = values[i];
            t.job.done++;
            if (t.job.done === t.job.rows.length && !t.job.settled) {
              t.job.settled = true;
              clearTimeout(t.job.timer);
              t.job.resolve(t.job.logits);
            }
          });
        } catch (err) {
          const e = new ApiError(500, 'internal', `scoring failed: ${(err as Error).message}`);
          for (const t of taken) this.fail(t.job, e);
        } finally {
          disposeBatch(batch);
        }
        this.opts.onBatch?.(taken.length, tokens, performance.now() - started);
        // Let requests that arrived during the pass join the queue before the next one.
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      this.running = false;
      this.notifyIdle();
    }
  }

  private notifyIdle(): void {
    if (this.running || this.queue.length > 0) return;
    for (const f of this.idle.splice(0)) f();
  }
}
