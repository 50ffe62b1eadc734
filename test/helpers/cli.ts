// Runs the `promedical` CLI in a child process, as a user would (its own cwd, no terminal).
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(fileURLToPath(import.meta.url), '../../..');
export const MAIN = path.join(ROOT, 'src/cli/main.ts');
const TSX = import.meta.resolve('tsx');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of a user's shell: 2 wasm threads at most, never npm's INIT_CWD of `npm test`. */
export function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PROMEDICAL_BACKEND: '', ...extra };
  if (!('INIT_CWD' in extra)) delete env.INIT_CWD;
  return env;
}

export function cli(args: string[], opts: { cwd: string; env?: Record<string, string> }): CliResult {
  const r = spawnSync(process.execPath, ['--import', TSX, MAIN, ...args], { cwd: opts.cwd, env: cliEnv(opts.env), encoding: 'utf8', timeout: 240_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts the CLI; `onStderr` sees stderr as it arrives (e.g. to send a signal at some point). */
export function cliAsync(args: string[], opts: { cwd: string; onStderr?: (text: string, child: ReturnType<typeof spawn>) => void }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, MAIN, ...args], { cwd: opts.cwd, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      opts.onStderr?.(stderr, child);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Every file under dir with its bytes, to prove a failed command touched nothing. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = fs.readFileSync(p).toString('base64');
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

/** The error line of a failed command: exactly one line before an optional "see ... --help". */
export function errorLine(r: CliResult): string {
  const lines = r.stderr.split('\n').filter((l) => l && !l.startsWith('[promedical]') && !l.startsWith('see promedical'));
  if (lines.length !== 1) throw new Error(`expected one error line, got ${lines.length}:\n${r.stderr.slice(0, 2000)}`);
  return lines[0];
}
