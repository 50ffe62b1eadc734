// Flags from field tables: `--batch-size 8` sets batch_size, parsed by the field's kind and checked
// against its limits before anything runs; `--config FILE` reads a JSON config first (a run's own
// config.json is one) and flags override it; --help is written from the same table.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, describeField, fieldProblem, type Field } from '../train/config.js';

/** Bad command-line use: exit code 2 and a pointer to --help. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The installed package's root (from src/cli or dist/cli alike): where the bundled data lives. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Where the user stands: npm scripts run in the package root and say where they were started in
 * INIT_CWD (`cd examples && npm run score-rm -- --rm ../runs/...`); anything else runs in place.
 */
export function userCwd(): string {
  const init = process.env.INIT_CWD;
  return init && path.resolve(process.cwd()) === PACKAGE_ROOT ? path.resolve(init) : process.cwd();
}

export const flagOf = (key: string) => `--${key.replace(/_/g, '-')}`;

/** Flags every command takes besides its fields. */
const COMMON = { help: 'This text.', config: 'A JSON config (a run\'s config.json is one); flags override it.', verbose: 'Full stack traces on errors.' };

export interface Parsed {
  /** Field values given by flags or --config (not the defaults), with paths absolute. */
  values: Record<string, unknown>;
  help: boolean;
  verbose: boolean;
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** One flag's text as its field's value, or a UsageError naming the flag. */
function parseValue(flag: string, f: Field, text: string): unknown {
  if ('nullable' in f && f.nullable && (text === '' || text === 'none' || text === 'null')) return null;
  let v: unknown = text;
  if (f.kind === 'int' || f.kind === 'number') {
    if (!NUMBER.test(text.trim())) throw new UsageError(`${flag} ${JSON.stringify(text)}: not a number; expected ${describeField(f)}`);
    v = Number(text);
  } else if (f.kind === 'boolean') {
    if (text !== 'true' && text !== 'false') throw new UsageError(`${flag}=${text}: expected true or false`);
    v = text === 'true';
  }
  const problem = fieldProblem(f, v);
  if (problem) throw new UsageError(`${flag} ${text}: ${problem}; expected ${describeField(f)}`);
  return v;
}

/**
 * Parses argv against `fields`. `paths` are the fields holding file or folder paths: flags resolve
 * against the user's folder, a --config file's against that file's folder.
 */
export function parseFlags(command: string, argv: string[], fields: Record<string, Field>, paths: readonly string[]): Parsed {
  const byFlag = new Map(Object.keys(fields).map((k) => [flagOf(k), k]));
  const flags: Record<string, unknown> = {};
  let help = false, verbose = false, configFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(arg)} (flags start with --)`);
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    const next = (): string => {
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) throw new UsageError(`${name} needs a value`);
      return argv[++i];
    };
    if (name === '--help') help = true;
    else if (name === '--verbose') verbose = true;
    else if (name === '--config') configFile = next();
    else if (byFlag.has(name) || (name.startsWith('--no-') && fields[byFlag.get(`--${name.slice(5)}`) ?? '']?.kind === 'boolean')) {
      const negated = !byFlag.has(name);
      const key = byFlag.get(negated ? `--${name.slice(5)}` : name)!;
      const f = fields[key];
      if (f.kind === 'boolean') flags[key] = negated ? false : inline === undefined ? true : parseValue(name, f, inline);
      else flags[key] = parseValue(name, f, next());
    } else {
      const near = nearest(name, [...byFlag.keys(), '--help', '--config', '--verbose']);
      throw new UsageError(`unknown flag ${name}${near ? ` (did you mean ${near}?)` : ''}`);
    }
  }
  const cwd = userCwd();
  const fromFlags = resolvePaths(flags, paths, cwd);
  let fromFile: Record<string, unknown> = {};
  if (configFile && !help) {
    const file = path.resolve(cwd, configFile);
    let json: unknown;
    try {
      json = JSON.parse(fs.readFileSync(file, 'utf8').replace(/^\uFEFF/, ''));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new ConfigError(`--config ${configFile}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(`${configFile}: a config must be a JSON object`);
    for (const key of Object.keys(json)) if (!(key in fields)) throw new ConfigError(`${configFile}: unknown field "${key}" (${command} takes: ${Object.keys(fields).join(', ')})`);
    fromFile = resolvePaths(json as Record<string, unknown>, paths, path.dirname(file));
    // What says how a run was started does not carry over into the next one.
    delete fromFile.resume;
    delete fromFile.overwrite;
  }
  return { values: { ...fromFile, ...fromFlags }, help, verbose };
}

function resolvePaths(values: Record<string, unknown>, paths: readonly string[], base: string): Record<string, unknown> {
  const out = { ...values };
  for (const k of paths) if (typeof out[k] === 'string' && out[k] !== '') out[k] = path.resolve(base, out[k] as string);
  return out;
}

/** The closest name by edit distance, when it is close enough to be a typo. */
function nearest(name: string, names: string[]): string | undefined {
  const d = (a: string, b: string) => {
    const row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      let prev = row[0]++;
      for (let j = 1; j <= b.length; j++) {
        const cur = row[j];
        row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
        prev = cur;
      }
    }
    return row[b.length];
  };
  const best = names.map((n) => [n, d(name, n)] as const).sort((a, b) => a[1] - b[1])[0];
  return best && best[1] <= Math.max(2, Math.floor(name.length / 4)) ? best[0] : undefined;
}

/**
 * --help text from the field table: flag, what it takes, the sentence, and the default; where the
 * command's default departs from the library's (`library`), both.
 */
export function helpText(usage: string, about: string, fields: Record<string, Field>, defaults: Record<string, unknown>, notes: string[] = [], library: Record<string, unknown> = defaults): string {
  const show = (f: Field, d: unknown) => (f.kind === 'boolean' ? (d ? 'on' : 'off') : d === null ? 'none' : String(d));
  const rows: [string, string][] = Object.entries(fields).map(([k, f]) => {
    const arg = f.kind === 'boolean' ? '' : f.kind === 'enum' ? ` ${f.values.join('|')}` : f.kind === 'string' ? ' PATH' : f.kind === 'int' ? ' N' : ' X';
    const d = defaults[k];
    let shown = d === undefined ? '' : f.kind === 'boolean' ? (d ? ' (default on)' : '') : ` (default ${show(f, d)})`;
    if (d !== undefined && library[k] !== d) shown = ` (default ${show(f, d)}; the library's: ${show(f, library[k])})`;
    return [`${flagOf(k)}${arg}`, `${f.doc}${shown}`];
  });
  rows.push(...Object.entries(COMMON).map(([k, doc]) => [k === 'config' ? '--config FILE' : `--${k}`, doc] as [string, string]));
  const width = Math.min(34, Math.max(...rows.map(([a]) => a.length)) + 2);
  const lines = rows.map(([a, doc]) => `  ${a.padEnd(width)}${a.length >= width ? `\n  ${' '.repeat(width)}` : ''}${doc}`);
  return [`Usage: ${usage}`, '', about, '', ...lines, ...(notes.length ? ['', ...notes] : [])].join('\n');
}
