// What every training command does before anything runs: flags and --config into a validated
// config (defaults from the library's constants and the command's departures from them), input paths checked, the run folder checked.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../model/config.js';
import { CLI_DEFAULTS, CONFIG_DEFAULTS, CONFIG_FIELDS, PATH_FIELDS, resumableFields, storedConfig, validateConfig, type ConfigKind, type Field } from '../train/config.js';
import { checkRunDir } from '../train/run_state.js';
import { helpText, PACKAGE_ROOT, parseFlags, userCwd } from './args.js';

/** The defaults that name bundled files (data/*.jsonl) resolve against the installed package. */
const BUNDLED = new Set(['data', 'eval_data']);

export interface CommandInput<C> {
  config: C;
  help: string | null;
  verbose: boolean;
}

/** Flags (and --config) of a trainer command as its validated config, or its help text. */
export function trainerInput<K extends ConfigKind>(kind: K, command: string, about: string, argv: string[], notes: string[] = []): CommandInput<ReturnType<typeof validateConfig<K>>> {
  const fields = CONFIG_FIELDS[kind] as Record<string, Field>;
  const library = CONFIG_DEFAULTS[kind] as unknown as Record<string, unknown>;
  const cli = CLI_DEFAULTS[kind] as Record<string, unknown>;
  const defaults = { ...library, ...cli };
  const parsed = parseFlags(command, argv, fields, PATH_FIELDS);
  if (parsed.help) return { config: null as never, help: helpText(`promedical ${command} [flags]`, about, fields, defaults, notes, library), verbose: parsed.verbose };
  // The command's own defaults sit under what the flags and --config give.
  const values: Record<string, unknown> = { ...cli, ...parsed.values };
  for (const k of PATH_FIELDS) {
    if (!(k in fields) || k in values || typeof defaults[k] !== 'string') continue;
    values[k] = path.resolve(BUNDLED.has(k) ? PACKAGE_ROOT : userCwd(), defaults[k] as string);
  }
  // "" for a nullable path means none (e.g. --eval-data "").
  for (const k of PATH_FIELDS) if (values[k] === '' && (fields[k] as { nullable?: boolean } | undefined)?.nullable) values[k] = null;
  const config = validateConfig(kind, values);
  return { config, help: null, verbose: parsed.verbose };
}

/** Refuses what the run folder rules refuse (see checkRunDir), before anything is loaded. */
export function checkRun(kind: ConfigKind, c: Parameters<typeof storedConfig>[0]): void {
  checkRunDir(c.out, { config: storedConfig(c) as unknown as Record<string, unknown>, resume: c.resume, overwrite: c.overwrite, resumable: resumableFields(kind) });
}

export function requireFile(flag: string, p: string): string {
  if (!fs.existsSync(p)) throw new ConfigError(`${flag} ${p}: no such file or folder`);
  return p;
}

/** A Hugging Face Qwen3 folder: it has a config.json. */
export function requireModelDir(flag: string, p: string): string {
  if (!fs.existsSync(path.join(p, 'config.json'))) throw new ConfigError(`${flag} ${p}: no Qwen3 model there (no config.json)`);
  return p;
}

/** A saved CriteriaRewardModel folder: it has a reward_config.json. */
export function requireRewardModelDir(flag: string, p: string): string {
  if (!fs.existsSync(path.join(p, 'reward_config.json'))) throw new ConfigError(`${flag} ${p}: no reward model there (no reward_config.json)`);
  return p;
}

/** Progress lines of a command on stderr. */
export const say = (command: string) => (line: string) => process.stderr.write(`[${command}] ${line}\n`);

/** The first SIGTERM or SIGINT, by name, for a server to stop on; `release` removes the listeners. */
export function untilSignal(): { signal: Promise<NodeJS.Signals>; release: () => void } {
  let stop: (s: NodeJS.Signals) => void = () => {};
  const signal = new Promise<NodeJS.Signals>((resolve) => (stop = resolve));
  const onSignal = (s: NodeJS.Signals) => stop(s);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const release = () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
  return { signal, release };
}
