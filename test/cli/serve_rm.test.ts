// promedical serve-rm in a child process, as a user runs it: it listens on loopback, answers
// /health once warmed up, scores a record named by id, and on SIGTERM stops accepting, finishes
// the request in flight and exits 0 with a JSON line of totals.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, cliAsync } from '../helpers/cli.js';
import { post, testRecords, tinyRewardModel, TEST_RECORDS } from '../serve/helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'serve-rm-'));
const rmDir = path.join(tmp, 'rm');

test.before(async () => {
  const rm = await tinyRewardModel();
  await rm.save(rmDir);
  rm.dispose();
});
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('serve-rm --help lists its flags; a missing --rm is a usage error before anything loads', () => {
  const help = cli(['serve-rm', '--help'], { cwd: tmp });
  assert.is(help.code, 0);
  for (const flag of ['--rm', '--records', '--host', '--port', '--max-batch-tokens', '--max-wait-ms', '--max-queue', '--request-timeout', '--max-body', '--shutdown-timeout']) assert.ok(help.stdout.includes(flag), flag);
  const bad = cli(['serve-rm', '--rm', path.join(tmp, 'nothing')], { cwd: tmp });
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /no reward model there/);
});

test('SIGTERM: stops accepting, finishes the request in flight, exits 0', async () => {
  const [record] = await testRecords();
  let url = '';
  let inFlight: Promise<Awaited<ReturnType<typeof post>>> | undefined;
  const result = await cliAsync(['serve-rm', '--rm', rmDir, '--records', TEST_RECORDS, '--port', '0', '--max-wait-ms', '300', '--shutdown-timeout', '20', '--backend', 'wasm'], {
    cwd: tmp,
    onStderr: (text, child) => {
      const m = /listening on (http:\/\/\S+)/.exec(text);
      if (!m || url) return;
      url = m[1];
      void (async () => {
        const health = await fetch(`${url}/health`);
        assert.is(health.status, 200);
        // The request waits 300 ms for company in the batcher; SIGTERM comes meanwhile.
        inFlight = post(`${url}/v1/score`, { prompt: record.prompt, responses: [record.responses[0].text], record_id: record.id });
        await new Promise((r) => setTimeout(r, 100));
        child.kill('SIGTERM');
      })();
    },
  });
  assert.ok(url, `it printed its address: ${result.stderr}`);
  assert.is(result.code, 0, result.stderr);
  const answer = await inFlight!;
  assert.is(answer.status, 200, 'the request in flight was answered');
  assert.is(answer.body.results.length, 1);
  assert.match(result.stderr, /SIGTERM: finishing in-flight requests/);
  const totals = JSON.parse(result.stdout.trim().split('\n').pop()!);
  assert.is(totals.stopped, 'SIGTERM');
  assert.ok(totals.requests >= 2, JSON.stringify(totals));
  // It no longer listens.
  const after = await fetch(`${url}/health`).then(() => 'answered', () => 'refused');
  assert.is(after, 'refused');
});

test.run();
