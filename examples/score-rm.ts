// Score responses with a trained criteria-injected reward model: one JSON line per response with
// its per-criterion probabilities, tier scores S1/S2/S3 and the ProMedical reward.
//   npm run score-rm -- --rm runs/train-rm/reward-model --data data/test.jsonl
import { parseArgs } from 'node:util';
import { CriteriaRewardModel, initBackend, readRecords } from '../src/index.js';

const { values: a } = parseArgs({
  options: {
    rm: { type: 'string', default: 'runs/train-rm/reward-model' },
    data: { type: 'string', default: 'data/test.jsonl' },
    format: { type: 'string', default: 'promedical' },
    alpha: { type: 'string', default: '0.1' },
    beta: { type: 'string', default: '0.5' },
    lambda: { type: 'string', default: '1.5' },
    backend: { type: 'string', default: 'auto' },
    help: { type: 'boolean', default: false },
  },
});
if (a.help) {
  console.log(`Usage: npm run score-rm -- --rm DIR --data FILE [--format NAME] [--alpha 0.1 --beta 0.5 --lambda 1.5]
Prints, per response of each record: {record, response, probabilities: {criterion: p}, s1, s2, s3, reward}.
Records need criteria; grades are not needed (they are what the model predicts).`);
  process.exit(0);
}
await initBackend(a.backend as 'auto', { log: () => {} });
const rm = await CriteriaRewardModel.load(a.rm!);
const weights = { alpha: Number(a.alpha), beta: Number(a.beta), lambda: Number(a.lambda) };
for await (const record of readRecords(a.data!, { format: a.format as 'promedical' })) {
  if (record.criteria.length === 0) throw new Error(`${a.data}: record ${record.id} has no criteria to score against`);
  const scored = await rm.scoreResponses(record.prompt, record.responses.map((r) => r.text), record.criteria, weights);
  scored.forEach((s, i) => {
    const probabilities = Object.fromEntries(record.criteria.map((c, j) => [c.id, Number(s.probabilities[j].toFixed(4))]));
    console.log(JSON.stringify({ record: record.id, response: record.responses[i].id, probabilities, ...s.scores, reward: s.reward }));
  });
}
rm.dispose();
