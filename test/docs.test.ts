// The documentation as a reader uses it: every TypeScript block of README.md and docs/api.md
// type-checks against the library (strict, nodenext, top-level await allowed; one compiler run for
// all blocks); every `npm run X` names a package.json script, every `npx promedical X` a CLI
// command; every relative link and every repository path in backticks exists.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

const root = path.resolve(fileURLToPath(import.meta.url), '../..');
const read = (file: string) => fs.readFileSync(path.join(root, file), 'utf8');

/** The Markdown files whose names, links and paths are checked. */
function docFiles(): string[] {
  const docsDir = path.join(root, 'docs');
  const docs = fs.existsSync(docsDir) ? fs.readdirSync(docsDir).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`) : [];
  return ['README.md', ...docs, 'test/README.md'].filter((f) => fs.existsSync(path.join(root, f)));
}

interface Block {
  doc: string;
  /** 1-based line of the block's first code line in `doc`. */
  line: number;
  code: string;
}

/** Fenced blocks of a Markdown text, with their language and first code line. */
function fences(text: string): { lang: string; line: number; code: string }[] {
  const lines = text.split('\n');
  const out: { lang: string; line: number; code: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^\s*(`{3,})\s*([\w+-]*)/.exec(lines[i]);
    if (!open) continue;
    const close = new RegExp(`^\\s*${open[1]}\\s*$`);
    let j = i + 1;
    while (j < lines.length && !close.test(lines[j])) j++;
    out.push({ lang: open[2].toLowerCase(), line: i + 2, code: lines.slice(i + 1, j).join('\n') });
    i = j;
  }
  return out;
}

function tsBlocks(doc: string): Block[] {
  return fences(read(doc))
    .filter((f) => f.lang === 'ts' || f.lang === 'typescript')
    .map((f) => ({ doc, line: f.line, code: f.code }));
}

/** Type-checks blocks as modules of a user project that imports 'promedical' (mapped to src/). */
function typeCheck(blocks: Block[]): string[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'promedical-docs-'));
  try {
    // Blocks import '@tensorflow/tfjs' and the like as a user's project would: from node_modules.
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
    const files = new Map<string, Block>();
    blocks.forEach((b, i) => {
      // .mts: always an ES module, so top-level await is allowed and nothing needs exporting.
      const file = path.join(dir, `${b.doc.replace(/[^\w]+/g, '_')}_${b.line}_${i}.mts`);
      fs.writeFileSync(file, b.code + '\n');
      files.set(file, b);
    });
    const options: ts.CompilerOptions = {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ['lib.es2022.d.ts'],
      types: ['node'],
      typeRoots: [path.join(root, 'node_modules/@types')],
      strict: true,
      esModuleInterop: true,
      skipLibCheck: true,
      noEmit: true,
      paths: { promedical: [path.join(root, 'src/index.ts')] },
    };
    const program = ts.createProgram([...files.keys()], options);
    const errors: string[] = [];
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      if (!d.file) {
        errors.push(`TS${d.code}: ${message}`);
        continue;
      }
      // Only the blocks are judged here: the library's own type errors are `npm run typecheck`'s.
      const b = files.get(path.resolve(d.file.fileName));
      if (!b) continue;
      const { line, character } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
      errors.push(`${b.doc}:${b.line + line}:${character + 1}: TS${d.code}: ${message}`);
    }
    return errors;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('every TypeScript block of README.md and docs/api.md type-checks against the library', () => {
  const blocks = ['README.md', 'docs/api.md'].flatMap(tsBlocks);
  assert.ok(tsBlocks('README.md').length >= 1, 'README.md has a TypeScript block');
  assert.ok(tsBlocks('docs/api.md').length >= 5, 'docs/api.md has TypeScript blocks');
  // A block with a known error, in the same compiler run: proves errors are caught and located.
  const probe: Block = { doc: 'probe.md', line: 10, code: "import { initBackend } from 'promedical';\n\nawait initBackend('cuda');" };
  const errors = typeCheck([...blocks, probe]);
  const probeErrors = errors.filter((e) => e.startsWith('probe.md:'));
  assert.is(probeErrors.length, 1, `the probe block's error is reported: ${probeErrors.join('; ')}`);
  assert.match(probeErrors[0], /^probe\.md:12:\d+: TS2345: .*"cuda"/);
  const real = errors.filter((e) => !e.startsWith('probe.md:'));
  assert.equal(real, [], `type errors in documentation blocks:\n${real.join('\n')}`);
});

/** Text outside fenced blocks (inline code and links there are what the reader sees as names). */
const prose = (text: string) => {
  const lines = text.split('\n');
  let fence: string | null = null;
  return lines
    .map((l) => {
      const m = /^\s*(`{3,})/.exec(l);
      if (m && (fence === null || m[1] === fence)) {
        fence = fence === null ? m[1] : null;
        return '';
      }
      return fence === null ? l : '';
    })
    .join('\n');
};

async function cliCommands(): Promise<string[]> {
  const file = path.join(root, 'src/cli/commands.ts');
  if (!fs.existsSync(file)) return ['train-rm', 'score-rm', 'train-sft', 'train-grpo', 'eval-bench'];
  const mod = (await import(pathToFileURL(file).href)) as { COMMANDS?: unknown };
  assert.ok(Array.isArray(mod.COMMANDS), 'src/cli/commands.ts exports a COMMANDS array');
  return (mod.COMMANDS as unknown[]).map((c) => (typeof c === 'string' ? c : String((c as { name?: unknown }).name)));
}

test('every `npm run X` is a package.json script and every `npx promedical X` a CLI command', async () => {
  const scripts = Object.keys((JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts);
  const commands = await cliCommands();
  const bad: string[] = [];
  let seen = 0;
  for (const doc of docFiles()) {
    const text = read(doc);
    for (const m of text.matchAll(/npm run\s+(?:(?:-s|--silent)\s+)?([A-Za-z0-9][\w:.-]*)/g)) {
      seen++;
      if (!scripts.includes(m[1])) bad.push(`${doc}: npm run ${m[1]} (scripts: ${scripts.join(', ')})`);
    }
    for (const m of text.matchAll(/npx promedical\s+([a-z][\w-]*)/g)) {
      seen++;
      if (!commands.includes(m[1])) bad.push(`${doc}: npx promedical ${m[1]} (commands: ${commands.join(', ')})`);
    }
  }
  assert.ok(seen > 0, 'the README names commands');
  assert.ok(/npm run train-rm/.test(read('README.md')) && /npm test/.test(read('README.md')), 'the README names the main job and the tests');
  assert.equal(bad, [], `unknown commands:\n${bad.join('\n')}`);
});

test('every relative link and every repository path in backticks exists', () => {
  const missing: string[] = [];
  for (const doc of docFiles()) {
    const text = prose(read(doc));
    for (const m of text.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = m[1];
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue; // URLs, anchors
      const file = decodeURIComponent(target.split('#')[0]);
      if (!fs.existsSync(path.resolve(root, path.dirname(doc), file))) missing.push(`${doc}: link ${target}`);
    }
    for (const m of text.matchAll(/`((?:docs|src|bench|data|test|examples|weights)\/[^`\s]*)`/g)) {
      const p = m[1];
      if (/[*?<>{}[\]]/.test(p)) continue; // patterns and placeholders, not paths
      if (!fs.existsSync(path.join(root, p))) missing.push(`${doc}: path ${p}`);
    }
  }
  assert.equal(missing, [], `missing files:\n${missing.join('\n')}`);
});

test('docs/training.md holds the config field tables as config.ts gives them (every field, its flag, defaults, TRL name)', async () => {
  const { CONFIG_FIELDS } = await import('../src/train/config.js');
  const { configTables } = await import('./helpers/config_tables.js');
  const text = fs.readFileSync(new URL('../docs/training.md', import.meta.url), 'utf8');
  for (const table of configTables()) {
    assert.ok(text.includes(table), `docs/training.md: a config table is out of date; print the current ones with npx tsx test/helpers/config_tables.ts\n${table.split('\n').find((l) => !text.includes(l))}`);
  }
  for (const kind of ['reward', 'sft', 'grpo'] as const) {
    for (const key of Object.keys(CONFIG_FIELDS[kind])) {
      assert.ok(text.includes(`| \`${key}\` (\`--${key.replace(/_/g, '-')}\`) |`), `${kind}.${key} in docs/training.md`);
    }
  }
});

test.run();
