// The config field tables of docs/training.md, generated from src/train/config.ts (the docs test
// checks that the doc holds them verbatim). Print them with: npx tsx test/helpers/config_tables.ts
import { pathToFileURL } from 'node:url';
import {
  CLI_DEFAULTS, CONFIG_DEFAULTS, CONFIG_FIELDS, describeField, GRPO_CLI_DEFAULTS, GRPO_TRL_NAMES, type ConfigKind, type Field,
} from '../../src/train/config.js';

const TRAINING_KEYS = ['out', 'steps', 'lr', 'lr_scheduler', 'warmup_ratio', 'weight_decay', 'max_grad_norm', 'micro_batch_size', 'save_every', 'keep_last', 'logging_steps', 'seed', 'gradient_checkpointing', 'backend', 'resume', 'overwrite'];

/** Why `promedical train-grpo` departs from the library's default of a field. */
const CLI_SOURCES: Record<string, string> = {
  beta: 'ProMedical paper (and DeepSeekMath)',
  loss_type: "DeepSeekMath's GRPO, which the paper's KL term comes from",
};

const value = (v: unknown) => (v === null ? 'none' : typeof v === 'string' ? `\`${v}\`` : String(v));
const flagCell = (k: string) => `\`${k}\` (\`--${k.replace(/_/g, '-')}\`)`;
const meaning = (f: Field) => `${f.doc}${f.resumable ? ' May change on resume.' : ''}`;
const header = (cols: string[]) => [`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`];

function trainingTable(): string {
  const kinds: ConfigKind[] = ['reward', 'sft', 'grpo'];
  const rows = TRAINING_KEYS.map((k) => {
    const f = (CONFIG_FIELDS.grpo as Record<string, Field>)[k];
    const defaults = kinds.map((kind) => {
      const lib = (CONFIG_DEFAULTS[kind] as unknown as Record<string, unknown>)[k];
      const cli = (CLI_DEFAULTS[kind] as Record<string, unknown>)[k];
      return cli === undefined ? value(lib) : `${value(lib)} (train-grpo: ${value(cli)})`;
    });
    return `| ${flagCell(k)} | ${describeField(f)} | ${defaults.join(' / ')} | ${meaning(f)} |`;
  });
  return [...header(['field (flag)', 'accepts', 'reward / sft / grpo default', 'meaning']), ...rows].join('\n');
}

function ownTable(kind: 'reward' | 'sft'): string {
  const fields = CONFIG_FIELDS[kind] as Record<string, Field>;
  const defaults = CONFIG_DEFAULTS[kind] as unknown as Record<string, unknown>;
  const rows = Object.keys(fields).filter((k) => !TRAINING_KEYS.includes(k)).map((k) => `| ${flagCell(k)} | ${describeField(fields[k])} | ${value(defaults[k])} | ${meaning(fields[k])} |`);
  return [...header(['field (flag)', 'accepts', 'default', 'meaning']), ...rows].join('\n');
}

function grpoTable(): string {
  const fields = CONFIG_FIELDS.grpo as Record<string, Field>;
  const lib = CONFIG_DEFAULTS.grpo as unknown as Record<string, unknown>;
  const cli = GRPO_CLI_DEFAULTS as Record<string, unknown>;
  const trl = GRPO_TRL_NAMES as Record<string, string>;
  const rows = Object.keys(fields).filter((k) => !TRAINING_KEYS.includes(k)).map((k) => {
    const source = trl[k] ? 'TRL 1.10' : 'ours';
    const cliCell = k in cli ? `${value(cli[k])} (${CLI_SOURCES[k] ?? 'measured on the tiny model'})` : 'same';
    return `| ${flagCell(k)} | ${trl[k] ? `\`${trl[k]}\`` : '-'} | ${describeField(fields[k])} | ${value(lib[k])} (${source}) | ${cliCell} | ${meaning(fields[k])} |`;
  });
  return [...header(['field (flag)', "TRL's field", 'accepts', 'library default (source)', 'train-grpo default', 'meaning']), ...rows].join('\n');
}

/** The four tables in the order docs/training.md shows them. */
export function configTables(): string[] {
  return [trainingTable(), ownTable('reward'), ownTable('sft'), grpoTable()];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) console.log(configTables().join('\n\n'));
