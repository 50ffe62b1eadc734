// The Python clients of docs/serving.md (TRL, OpenRLHF, verl), each run with python3 against a live
// server on 127.0.0.1; skipped with a message where python3 is absent.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CriteriaRewardModel } from '../../src/reward/model.js';
import { createRewardServer } from '../../src/serve/server.js';
import { ROOT } from '../helpers/cli.js';
import { testRecords, tinyRewardModel } from './helpers.js';

const python = spawnSync('python3', ['--version']).status === 0;

/** The ```python blocks of docs/serving.md by their first-line file name. */
function pythonBlocks(): Map<string, string> {
  const text = fs.readFileSync(path.join(ROOT, 'docs/serving.md'), 'utf8');
  return new Map([...text.matchAll(/```python\n# (\S+\.py)\n([\s\S]*?)```/g)].map((m) => [m[1], m[2]]));
}

test('docs/serving.md has the TRL, OpenRLHF and verl clients', () => {
  assert.equal([...pythonBlocks().keys()].sort(), ['openrlhf_check.py', 'trl_reward.py', 'verl_reward.py']);
});

test('each Python client gets rewards from a live server', async () => {
  if (!python) {
    console.log('  skipped: python3 is not on PATH, so the Python clients of docs/serving.md were not run');
    return;
  }
  const rm: CriteriaRewardModel = await tinyRewardModel();
  const records = await testRecords();
  const server = createRewardServer(rm, { records });
  await server.ready;
  const { url } = await server.listen({ port: 0 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'serve-py-'));
  try {
    for (const [name, code] of pythonBlocks()) {
      fs.writeFileSync(path.join(dir, name), code);
      // Asynchronous: the server answers in this process while python3 waits.
      const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        import('node:child_process').then(({ execFile }) => {
          execFile('python3', [path.join(dir, name)], { env: { ...process.env, PROMEDICAL_URL: url, PROMEDICAL_RECORD: records[0].id }, timeout: 60_000 }, (err, stdout, stderr) =>
            resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
          );
        });
      });
      assert.is(out.code, 0, `${name}: ${out.stderr}`);
      const line = JSON.parse(out.stdout.trim().split('\n').pop()!);
      const value = Object.values(line)[0] as unknown;
      const reward = Array.isArray(value) ? value[0] : (value as { score: number }).score;
      assert.type(reward, 'number', `${name}: ${out.stdout}`);
      assert.ok(Number.isFinite(reward), `${name}: ${out.stdout}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await server.close();
    rm.dispose();
  }
});

test.run();
