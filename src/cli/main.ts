#!/usr/bin/env node
// The `promedical` command: `promedical <command> [flags]`. Errors end the process with one line
// `promedical <command>: error: <message>` (the stack with --verbose): exit 2 for bad usage or a
// bad config, 130 for Ctrl-C (after a checkpoint), 1 for anything else.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../model/config.js';
import { InterruptedError } from '../train/run.js';
import { PACKAGE_ROOT, UsageError } from './args.js';
import { COMMANDS, RUN, type Command } from './commands.js';

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.length)) + 2;
  return [
    'Usage: promedical <command> [flags]     (promedical <command> --help for its flags)',
    '',
    ...COMMANDS.map((c) => `  ${c.padEnd(width)}${RUN[c].about}`),
    '',
    'The pipeline: train-rm -> train-sft -> train-grpo -> eval-bench. Progress goes to stderr; each',
    'command ends with one JSON line on stdout.',
  ].join('\n');
}

/** One line for the user: the message with its line breaks folded. */
function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n').map((l) => l.trim()).filter(Boolean).join('; ');
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(usage());
    return command === undefined ? 2 : 0;
  }
  if (command === '--version') {
    console.log(JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')).version);
    return 0;
  }
  const verbose = rest.includes('--verbose');
  const name = `promedical ${command}`;
  const fail = (err: unknown): number => {
    process.stderr.write(`${name}: error: ${oneLine(err)}\n`);
    if (verbose && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    if (err instanceof UsageError) process.stderr.write(`see ${name === 'promedical ' ? 'promedical' : name} --help\n`);
    return err instanceof InterruptedError ? 130 : err instanceof UsageError || err instanceof ConfigError ? 2 : 1;
  };
  if (!(COMMANDS as readonly string[]).includes(command)) {
    return fail(new UsageError(`unknown command "${command}"; the commands: ${COMMANDS.join(', ')}`));
  }
  // A rejection nobody awaited or an exception thrown in a callback (inside a library) is still
  // one line, not Node's dump of the minified source around it.
  const stray = new Promise<number>((resolve) => {
    process.once('unhandledRejection', (err) => resolve(fail(err)));
    process.once('uncaughtException', (err) => resolve(fail(err)));
  });
  try {
    return await Promise.race([RUN[command as Command].run(rest).then(() => 0), stray]);
  } catch (err) {
    return fail(err);
  }
}

const self = process.argv[1] && fs.realpathSync(process.argv[1]);
if (self && /[\\/]cli[\\/]main\.[jt]s$/.test(self)) {
  const code = await main(process.argv.slice(2));
  // Exit once stdout is flushed (a pipe is written asynchronously), whatever handles are left.
  process.stdout.write('', () => process.exit(code));
}
