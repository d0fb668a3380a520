// The built-in model (models/vlmkit-shapes) as the default of ask, chat, tokens, info, eval and demo when --model
// is left out; `vlmkit demo` runs end to end (whatever the model answers: test/builtin/ checks the answers); the
// package ships the model and the demo picture; a missing built-in model is a one-line error.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { BUILTIN_MODEL_DIR, builtinModelDir } from '../../src/api.js';
import { VlmkitError } from '../../src/errors.js';
import { run } from '../../src/cli/main.js';
import { DEMO_IMAGE, DEMO_QUESTIONS } from '../../src/cli/demo.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'vlmkit.js');
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-default-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI in this process (no tsx start-up per call). */
async function cli(args: string[], stdin = ''): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const input = new PassThrough();
  input.end(stdin);
  const code = await run(args, { stdout, stderr, stdin: input });
  return { code, stdout: out, stderr: err };
}

/** The CLI as a user runs it, in `cwd`. */
function spawned(args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, VLMKIT_CLI_SOURCE: '1', VLMKIT_DEBUG: '' } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    p.stdin.end();
  });
}

function json<T>(r: Run): T {
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, `one JSON line expected: ${r.stdout}`);
  return JSON.parse(lines[0]!) as T;
}

describe('the built-in model', () => {
  it('is models/vlmkit-shapes at the package root, and it is there', () => {
    assert.equal(BUILTIN_MODEL_DIR, join(ROOT, 'models', 'vlmkit-shapes'));
    assert.ok(existsSync(join(BUILTIN_MODEL_DIR, 'config.json')), `${BUILTIN_MODEL_DIR}/config.json is missing`);
    assert.equal(builtinModelDir(), BUILTIN_MODEL_DIR);
  });

  it('missing, is a one-line error that says the install is incomplete and what to do', () => {
    const gone = join(tmp, 'no-such-model');
    assert.throws(
      () => builtinModelDir(gone),
      (e: unknown) => e instanceof VlmkitError && e.code === 'E_MODEL_DIR' && !e.message.includes('\n') && e.message.includes(gone) && /reinstall/.test(e.message) && /--model/.test(e.message),
    );
  });

  it('ships in the npm package, with the demo picture', () => {
    const r = spawnSync('npm', ['pack', '--dry-run', '--ignore-scripts', '--json'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const files = new Set((JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path));
    for (const f of ['models/vlmkit-shapes/config.json', 'models/vlmkit-shapes/model.safetensors', 'models/vlmkit-shapes/tokenizer.json', 'assets/demo.png'])
      assert.ok(files.has(f), `${f} is not in the package (package.json "files")`);
  });
});

describe('commands without --model use the built-in model', () => {
  it('info describes models/vlmkit-shapes', async () => {
    const d = json<{ dir: string }>(await cli(['info', '--json']));
    assert.equal(d.dir, BUILTIN_MODEL_DIR);
    const text = await cli(['info']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout.split('\n')[0]!, new RegExp(`in ${BUILTIN_MODEL_DIR.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  });

  it('info takes one folder: a positional and --model together are refused', async () => {
    const r = await cli(['info', BUILTIN_MODEL_DIR, '--model', BUILTIN_MODEL_DIR]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^vlmkit: give one checkpoint directory/);
  });

  it('tokens gives the same prompt as with --model models/vlmkit-shapes', async () => {
    const args = ['--image', DEMO_IMAGE, '--json', 'How many shapes are there?'];
    const plain = json<{ input_ids: number[] }>(await cli(['tokens', ...args]));
    const named = json<{ input_ids: number[] }>(await cli(['tokens', '--model', BUILTIN_MODEL_DIR, ...args]));
    assert.ok(plain.input_ids.length > 0);
    assert.deepEqual(plain, named);
  });

  it('ask answers as with --model models/vlmkit-shapes', async () => {
    const args = ['--image', DEMO_IMAGE, '--max-new-tokens', '4', '--json', 'How many shapes are there?'];
    const pick = (o: { token_ids: number[]; prompt_tokens: number; raw_text: string }) => ({ token_ids: o.token_ids, prompt_tokens: o.prompt_tokens, raw_text: o.raw_text });
    const plain = json<{ token_ids: number[]; prompt_tokens: number; raw_text: string }>(await cli(['ask', ...args]));
    const named = json<{ token_ids: number[]; prompt_tokens: number; raw_text: string }>(await cli(['ask', '--model', BUILTIN_MODEL_DIR, ...args]));
    assert.ok(plain.token_ids.length >= 1 && plain.prompt_tokens > 0);
    assert.deepEqual(pick(plain), pick(named));
  });

  it('ask without --model, as a user types it, answers "How many circles are there?" with the number', async () => {
    // the demo picture holds a red and a blue circle (the generator's scene, test/builtin/demo.test.ts)
    const r = await spawned(['ask', '--image', DEMO_IMAGE, 'How many circles are there?'], tmp);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '2');
  });

  it('chat talks with it', async () => {
    const r = await cli(['chat', '--max-new-tokens', '3'], 'How many shapes are there?\n/exit\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split('\n').length, 2, `one answer line: ${JSON.stringify(r.stdout)}`);
  });

  it('eval scores it', async () => {
    const data = join(tmp, 'test.jsonl');
    const row = { messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'How many shapes are there?' }] }], images: [DEMO_IMAGE], answer: '4' };
    writeFileSync(data, JSON.stringify(row) + '\n');
    const o = json<{ model: string }>(await cli(['eval', '--data', data, '--max-new-tokens', '3', '--json']));
    assert.equal(o.model, BUILTIN_MODEL_DIR);
  });

  it('an empty --model is refused rather than taken for the default', async () => {
    const r = await cli(['ask', '--model', '', 'Hi']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^vlmkit: --model takes the folder .*leave it out for the built-in model\n$/);
  });

  it('every usage text says what the default is', async () => {
    for (const cmd of ['ask', 'chat', 'tokens', 'info', 'eval', 'serve', 'batch', 'demo']) {
      const r = await cli([cmd, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /\[--model <dir>\]|\[<dir>\]/, `${cmd}: the model is optional in the synopsis`);
      assert.match(r.stdout, /default: the built-in model vlmkit-shapes/, `${cmd} --help does not name the default model`);
    }
    const top = await cli(['--help']);
    assert.match(top.stdout, /^ {2}demo /m);
    assert.match(top.stdout, /Without --model, ask, chat, tokens, info, eval, serve, batch and demo use the built-in model/);
  });
});

describe('vlmkit demo', () => {
  it('asks its questions about the bundled picture and writes demo-boxes.png in the current folder', async () => {
    const cwd = mkdtempSync(join(tmp, 'cwd-'));
    const r = await spawned(['demo'], cwd);
    assert.equal(r.code, 0, r.stderr);
    const qs = r.stdout.split('\n').filter((l) => l.startsWith('Q: ')).map((l) => l.slice(3));
    assert.deepEqual(qs, [...DEMO_QUESTIONS]);
    assert.equal(r.stdout.split('\n').filter((l) => l.startsWith('A: ')).length, DEMO_QUESTIONS.length);
    assert.match(r.stdout, /^wrote demo-boxes\.png \(/m);
    const png = PNG.sync.read(readFileSync(join(cwd, 'demo-boxes.png')));
    const src = PNG.sync.read(readFileSync(DEMO_IMAGE));
    assert.deepEqual([png.width, png.height], [src.width, src.height]);
    assert.match(r.stderr, /^6 answers in [\d.]+ s with the built-in model/m);
  });

  it('--json gives one object, --out says where the picture goes', async () => {
    const out = join(tmp, 'sub', 'boxes.png');
    const o = json<{ model: string; image: string; answers: { question: string; answer: string; raw_answer: string; boxes: unknown[] }[]; boxes_png: string; seconds: number }>(await cli(['demo', '--json', '--out', out]));
    assert.equal(o.model, BUILTIN_MODEL_DIR);
    assert.equal(o.image, DEMO_IMAGE);
    assert.deepEqual(o.answers.map((a) => a.question), [...DEMO_QUESTIONS]);
    for (const a of o.answers) assert.ok(typeof a.answer === 'string' && typeof a.raw_answer === 'string' && Array.isArray(a.boxes));
    assert.equal(o.boxes_png, out);
    assert.ok(Number.isFinite(o.seconds) && o.seconds > 0);
    assert.ok(existsSync(out), `${out} was not written`);
  });

  it('refuses arguments and a missing model with one line', async () => {
    const a = await cli(['demo', 'what is this?']);
    assert.equal(a.code, 1);
    assert.match(a.stderr, /^vlmkit: vlmkit demo takes no arguments, got "what is this\?"; .*vlmkit ask .*asks your own\n$/);
    const gone = join(tmp, 'nope');
    const b = await cli(['demo', '--model', gone]);
    assert.equal(b.code, 1);
    assert.match(b.stderr, new RegExp(`^vlmkit: model directory ${gone.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} does not exist.*\n$`));
  });
});
