// promedical score-rm: one JSON line per response with its per-criterion probabilities, tier
// scores S1/S2/S3 and the ProMedical reward, from a trained criteria-injected reward model.
import * as path from 'node:path';
import { readRecords } from '../data/records.js';
import { DataError } from '../data/schema.js';
import { initBackend } from '../ops/backend.js';
import { CriteriaRewardModel } from '../reward/model.js';
import type { Field } from '../train/config.js';
import { helpText, PACKAGE_ROOT, parseFlags, userCwd } from './args.js';
import { requireFile, requireRewardModelDir } from './inputs.js';

const FIELDS: Record<string, Field> = {
  rm: { kind: 'string', doc: 'The reward model folder (train-rm writes <out>/reward-model).' },
  data: { kind: 'string', doc: 'Records to score: their criteria and responses (grades are not needed).' },
  format: { kind: 'enum', values: ['promedical', 'healthbench', 'kqa', 'kqa-nli', 'rar', 'ultramedical'], doc: 'Format of --data.' },
  alpha: { kind: 'number', min: 0, max: 1, exclusiveMax: true, doc: 'Weight of S2 in the reward (alpha < 1).' },
  beta: { kind: 'number', min: 0, exclusiveMin: true, doc: 'Headroom above 1 of S1 + alpha S2.' },
  lambda: { kind: 'number', min: 0, doc: 'Penalty per safety violation (>= 1 + beta: one violation outweighs any utility).' },
  max_length: { kind: 'int', min: 16, nullable: true, doc: "Longest judge input in tokens (default: the RM's own)." },
  backend: { kind: 'enum', values: ['auto', 'tensorflow', 'wasm', 'cpu'], doc: 'tfjs backend.' },
};
const DEFAULTS = { rm: 'runs/train-rm/reward-model', data: 'data/test.jsonl', format: 'promedical', alpha: 0.1, beta: 0.5, lambda: 1.5, max_length: null, backend: 'auto' };

const ABOUT = `Scores every response of every record against the record's criteria. Prints one JSON line per
response: { record, response, probabilities: { criterion: p }, s1, s2, s3, reward }.`;

export async function scoreRm(argv: string[]): Promise<void> {
  const parsed = parseFlags('score-rm', argv, FIELDS, ['rm', 'data']);
  if (parsed.help) return void console.log(helpText('promedical score-rm [flags]', ABOUT, FIELDS, DEFAULTS));
  const a = { ...DEFAULTS, rm: path.resolve(userCwd(), DEFAULTS.rm), data: path.join(PACKAGE_ROOT, DEFAULTS.data), ...parsed.values } as typeof DEFAULTS;
  if (a.lambda < 1 + a.beta) process.stderr.write(`[score-rm] note: lambda ${a.lambda} < 1 + beta: a safety violation can be outweighed by utility\n`);
  requireRewardModelDir('--rm', a.rm);
  requireFile('--data', a.data);
  await initBackend(a.backend as 'auto', { log: () => {} });
  const rm = await CriteriaRewardModel.load(a.rm, { maxLength: a.max_length ?? undefined });
  const weights = { alpha: a.alpha, beta: a.beta, lambda: a.lambda };
  try {
    let n = 0;
    for await (const record of readRecords(a.data, { format: a.format as 'promedical' })) {
      n++;
      if (record.criteria.length === 0) throw new DataError(a.data, n, 'criteria', `record "${record.id}" has no criteria to score against`);
      const scored = await rm.scoreResponses(record.prompt, record.responses.map((r) => r.text), record.criteria, weights);
      scored.forEach((s, i) => {
        const probabilities = Object.fromEntries(record.criteria.map((c, j) => [c.id, Number(s.probabilities[j].toFixed(4))]));
        console.log(JSON.stringify({ record: record.id, response: record.responses[i].id, probabilities, ...s.scores, reward: s.reward }));
      });
    }
  } finally {
    rm.dispose();
  }
}
