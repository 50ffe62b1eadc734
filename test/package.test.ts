// The published package as a user gets it: `npm pack`, install the tarball into a fresh project,
// import it from plain ESM JavaScript, and type-check a TypeScript consumer against dist/*.d.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(fileURLToPath(import.meta.url), '../..');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-pack-'));
const run = (cmd: string, args: string[], cwd: string) =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PROMEDICAL_BACKEND: '' } });

test.after(() => fs.rmSync(work, { recursive: true, force: true }));

test('npm pack -> npm install -> import { initBackend } from "promedical" works, with types; npx promedical train-rm runs', () => {
  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], root)) as { filename: string; files: { path: string }[] }[];
  const files = packed[0].files.map((f) => f.path);
  assert.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts'), 'tarball has dist with types');
  assert.ok(files.includes('dist/cli/main.js') && files.includes('data/train.jsonl') && files.includes('data/test.jsonl'), 'the CLI and its bundled data');
  assert.not.ok(files.some((f) => f.startsWith('test/') || f.startsWith('src/')), 'tarball ships only dist');

  const project = path.join(work, 'user-project');
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module' }));
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', path.join(work, packed[0].filename)], project);

  fs.writeFileSync(
    path.join(project, 'main.js'),
    `import { initBackend, loadTokenizer, readSafetensors, SafetensorsError } from 'promedical';
const info = await initBackend('auto', { log: () => {} });
let code = null;
try { readSafetensors(new Uint8Array(3)); } catch (e) { code = e instanceof SafetensorsError ? e.code : 'wrong class'; }
console.log(JSON.stringify({ backend: info.name, hello: loadTokenizer().encode('Hello world'), code }));
`,
  );
  const out = JSON.parse(run('node', ['main.js'], project).trim().split('\n').at(-1)!);
  assert.ok(['wasm', 'tensorflow'].includes(out.backend), `backend ${out.backend}`);
  assert.equal(out.hello, [9707, 1879]); // "Hello" and "\u0120world" in Qwen3's vocab
  assert.is(out.code, 'FILE_TOO_SMALL');

  // The CLI from the installed package: its bin, the bundled data, the tiny model in the user cache.
  const cache = path.join(work, 'cache');
  const cliRun = execFileSync('npx', ['promedical', 'train-rm', '--steps', '2'], {
    cwd: project, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PROMEDICAL_BACKEND: '', PROMEDICAL_CACHE: cache, INIT_CWD: project },
  });
  const summary = JSON.parse(cliRun.trim().split('\n').at(-1)!);
  assert.is(summary.steps, 2);
  assert.is(summary.run_dir, path.join(project, 'runs/train-rm'));
  assert.ok(summary.heldout.pairs > 0, 'judged on the bundled held-out records');
  assert.ok(fs.existsSync(path.join(cache, 'qwen3-tiny', 'model.safetensors')), 'the tiny model is in the user cache');
  assert.not.ok(fs.existsSync(path.join(project, 'node_modules/promedical/weights')), 'nothing written into the package');
  assert.ok(fs.existsSync(path.join(project, 'runs/train-rm/reward-model/reward_config.json')));

  // A TypeScript user: wrong argument types must fail, right ones must pass.
  const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
  const tsArgs = ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022',
    '--skipLibCheck', '--types', 'node', '--typeRoots', path.join(root, 'node_modules/@types')];
  fs.writeFileSync(path.join(project, 'good.ts'), `import { initBackend, type BackendInfo } from 'promedical';
const info: BackendInfo = await initBackend('wasm');
export const name: string = info.name;
`);
  run('node', [tsc, ...tsArgs, 'good.ts'], project);
  fs.writeFileSync(path.join(project, 'bad.ts'), `import { initBackend } from 'promedical';
await initBackend('cuda');
`);
  assert.throws(
    () => run('node', [tsc, ...tsArgs, 'bad.ts'], project),
    (e: unknown) => /'"cuda"' is not assignable/.test(String((e as { stdout?: string }).stdout)),
  );
});

test.run();
