// What `rubrics prepare` and `rubrics draft` share on the command line: the flags of their LLM
// calls, the chat clients built from them, and Ctrl-C (SIGINT / SIGTERM abort the calls in
// flight; what was finished stays on disk; exit 130 and a rerun continues).
import { ConfigError } from '../model/config.js';
import { createChatClient, type ChatClient } from '../rubrics/chat_client.js';
import { SettingsError, StageInterrupted } from '../rubrics/stage.js';
import type { Field } from '../train/config.js';
import { InterruptedError } from '../train/run.js';
import { UsageError } from './args.js';

export const LLM_FIELDS: Record<string, Field> = {
  concurrency: { kind: 'int', min: 1, max: 256, doc: 'Most LLM calls in flight at once.' },
  timeout: { kind: 'number', min: 0, exclusiveMin: true, doc: 'Seconds one HTTP attempt may take.' },
  retries: { kind: 'int', min: 0, max: 20, doc: 'Retries of a call after a network error, a timeout or HTTP 408 / 429 / 5xx (exponential backoff with jitter, Retry-After honoured).' },
  api_key_env: { kind: 'string', nullable: true, doc: 'An environment variable holding the API key, sent as a Bearer token to every endpoint.' },
};
export const LLM_DEFAULTS = { concurrency: 4, timeout: 120, retries: 3, api_key_env: null as string | null };

/**
 * --help from the field table, with each string flag's argument named (`args`: flag -> URL, NAME,
 * ...; helpText calls every string a PATH) and "(required)" for the flags in `needed`.
 */
export function stageHelp(help: string, args: Record<string, string>, needed: string[]): string {
  let text = help;
  for (const [flag, name] of Object.entries(args)) {
    text = text.replace(new RegExp(`^(  ${flag}) PATH( *)`, 'm'), (_m, f: string, sp: string) => `${f} ${name}${' '.repeat(Math.max(1, sp.length + 4 - name.length))}`);
  }
  for (const flag of needed) text = text.replace(new RegExp(`^(  ${flag} .*)\\(default none\\)$`, 'm'), '$1(required)');
  return text;
}

export function required<T>(flag: string, v: T | null | undefined): T {
  if (v === null || v === undefined || v === '') throw new UsageError(`${flag} is required`);
  return v;
}

/** A chat client for one endpoint with the LLM flags' timeout, retries and key. */
export function clientFor(flag: string, url: string, model: string, a: typeof LLM_DEFAULTS): ChatClient {
  let apiKey: string | undefined;
  if (a.api_key_env) {
    apiKey = process.env[a.api_key_env];
    if (!apiKey) throw new UsageError(`--api-key-env ${a.api_key_env}: that environment variable is not set`);
  }
  try {
    return createChatClient({ url, model, timeoutMs: Math.round(a.timeout * 1000), retries: a.retries, apiKey });
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message.replace(/^chat client: /, '')}`);
  }
}

/** Ctrl-C for the CLI: exit 130 with the library's message (main.ts maps InterruptedError). */
class Interrupted extends InterruptedError {
  constructor(message: string) {
    super(0, '');
    this.message = message;
  }
}

/** Runs a stage with SIGINT / SIGTERM wired to its abort signal, its errors mapped to exit codes. */
export async function interruptible<T>(run: (signal: AbortSignal) => Promise<T>, log: (line: string) => void): Promise<T> {
  const ac = new AbortController();
  const onSignal = (s: NodeJS.Signals) => {
    if (!ac.signal.aborted) log(`${s}: stopping; finished items are kept, rerun to continue`);
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await run(ac.signal);
  } catch (err) {
    if (err instanceof StageInterrupted) throw new Interrupted(err.message);
    if (err instanceof SettingsError) throw new ConfigError(err.message);
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
