// The `vlmkit` command, spawned as a user runs it (bin/vlmkit.js, on the sources via tsx), on the tiny SmolVLM
// fixture: ask (plain and --json), tokens, info, chat with piped input, and the bad inputs that must give a
// one-line error, a non-zero exit and no stack trace.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, type Run, vlmkit } from './spawn-cli.js';
import { ParityCase } from '../../src/parity/case.js';

const REF = join(ROOT, 'test', 'fixtures', 'reference');
const MODEL = join(REF, 'tiny-smolvlm');
const IMAGE = join(REF, 'images', 'wide_90x150.png');
const CASE = join(REF, 'cases', 'smolvlm_single_wide_90x150.safetensors');



const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function refCase() {
  const c = ParityCase.open(CASE);
  try {
    return { inputIds: c.ints('input_ids').values, generate: c.ints('generate').values };
  } finally {
    c.close();
  }
}

/** A user error: exit 1, one line on stderr starting "vlmkit: ", mentioning `what`, no stack, nothing on stdout. */
function assertUserError(r: Run, what: RegExp): void {
  assert.equal(r.code, 1, `exit code, stderr: ${r.stderr}`);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected: ${r.stderr}`);
  assert.match(lines[0]!, /^vlmkit: /);
  assert.match(lines[0]!, what);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

describe('vlmkit ask', () => {
  it('prints the answer alone on stdout and timings on stderr', async () => {
    const r = await vlmkit(['ask', '--model', MODEL, '--image', IMAGE, '--max-new-tokens', '4', 'What is in this image?']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split('\n').length, 2, `one line of answer: ${JSON.stringify(r.stdout)}`);
    assert.match(r.stderr, /prefill \d+ tok .* decode \d+ tok .*4 generated/);
  });

  it('--json prints one object with transformers\' greedy tokens', async () => {
    const ref = refCase();
    const r = await vlmkit(['ask', '--model', MODEL, '--image', IMAGE, '--max-new-tokens', '8', '--json', 'What is in this image?']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    const o = JSON.parse(lines[0]!) as { text: string; token_ids: number[]; finish_reason: string; prompt_tokens: number; timings: Record<string, number> };
    assert.equal(o.prompt_tokens, ref.inputIds.length);
    // the reference ran min_new_tokens = 8; without eos in its tokens plain greedy gives the same ones
    if (!ref.generate.includes(3)) assert.deepEqual(o.token_ids, ref.generate);
    assert.equal(typeof o.text, 'string');
    assert.ok(o.timings.prefill_tokens_per_s > 0);
    assert.equal(r.stderr, '');
  });

  it('sampling flags are accepted and reproducible by seed', async () => {
    const args = ['ask', '--model', MODEL, '--max-new-tokens', '6', '--temperature', '1.2', '--top-k', '20', '--top-p', '0.9', '--seed', '7', '--json', 'Say hello.'];
    const [a, b] = await Promise.all([vlmkit(args), vlmkit(args)]);
    assert.equal(a.code, 0, a.stderr);
    assert.deepEqual(JSON.parse(a.stdout).token_ids, JSON.parse(b.stdout).token_ids);
  });
});

describe('vlmkit tokens / info / chat', () => {
  it('tokens --json gives the reference input_ids', async () => {
    const r = await vlmkit(['tokens', '--model', MODEL, '--image', IMAGE, '--json', 'What is in this image?']);
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout) as { input_ids: number[]; expanded: string; tokens: number };
    assert.deepEqual(o.input_ids, refCase().inputIds);
    assert.equal(o.tokens, o.input_ids.length);
    assert.match(o.expanded, /<row_1_col_1>/);
  });

  it('tokens prints the expanded prompt and ids', async () => {
    const r = await vlmkit(['tokens', '--model', MODEL, '--image', IMAGE, 'What is in this image?']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /expanded \(98 tokens\)/);
    assert.match(r.stdout, /<image>×4/);
    assert.match(r.stdout, /^input_ids: 1 /m);
  });

  it('info describes the checkpoint', async () => {
    const r = await vlmkit(['info', MODEL, '--size', '512x512', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout);
    assert.equal(o.model_type, 'smolvlm');
    assert.equal(o.image_seq_len, 4);
    assert.equal(o.tie_word_embeddings, true);
    assert.equal(o.parameters.lm_head, 0);
    assert.ok(o.parameters.total > 100000);
    assert.deepEqual(Object.keys(o.dtypes), ['F32']);
    assert.match(o.engine.isa, /^(avx512|avx2|scalar)$/);
    // 512x512 -> 128x128 -> 4x4 tiles of 32 + global
    assert.deepEqual(o.tokens_per_image[0].grid, { rows: 4, cols: 4 });
    assert.equal(o.tokens_per_image[0].tiles, 17);
    const text = await vlmkit(['info', MODEL]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /SmolVLMForConditionalGeneration/);
    assert.match(text.stdout, /image_seq_len 4/);
    assert.match(text.stdout, /^engine: native kernels (avx512|avx2|scalar) /m);
    // --longest-edge: 512x512 -> 64x64 -> 2x2 tiles; tokens and ask agree with info
    const small = JSON.parse((await vlmkit(['info', MODEL, '--size', '512x512', '--longest-edge', '64', '--json'])).stdout);
    assert.deepEqual(small.tokens_per_image[0].grid, { rows: 2, cols: 2 });
    const tok = JSON.parse((await vlmkit(['tokens', '--model', MODEL, '--image', join(REF, 'images', 'square_64x64.png'), '--longest-edge', '64', '--json', 'hi'])).stdout);
    assert.deepEqual(tok.grids, [{ rows: 2, cols: 2 }]);
    const ask = await vlmkit(['ask', '--model', MODEL, '--image', join(REF, 'images', 'square_64x64.png'), '--longest-edge', '64', '--max-new-tokens', '2', '--json', 'hi']);
    assert.equal(ask.code, 0, ask.stderr);
    assert.equal(JSON.parse(ask.stdout).prompt_tokens, tok.tokens);
  });

  it('chat answers each piped line, with /image attaching an image', async () => {
    const r = await vlmkit(['chat', '--model', MODEL, '--max-new-tokens', '3'], `Hello\n/image ${IMAGE}\nWhat is this?\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split('\n').length, 3, JSON.stringify(r.stdout));
    assert.match(r.stderr, /attached/);
  });
});

describe('vlmkit bad input', () => {
  it('missing model directory', async () => {
    assertUserError(await vlmkit(['ask', '--model', join(tmp, 'nope'), 'hi']), /does not exist/);
    assertUserError(await vlmkit(['ask', '--model', join(ROOT, 'README.md'), 'hi']), /README\.md is a file, not a directory; give the path/);
  });

  it('unsupported model_type lists the supported ones', async () => {
    const dir = join(tmp, 'qwen');
    rmSync(dir, { recursive: true, force: true });
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir);
    const cfg = JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8'));
    cfg.model_type = 'qwen2_vl';
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    copyFileSync(join(MODEL, 'model.safetensors'), join(dir, 'model.safetensors'));
    assertUserError(await vlmkit(['ask', '--model', dir, 'hi']), /qwen2_vl.*idefics3, smolvlm/);
    assertUserError(await vlmkit(['info', dir]), /not supported/);
  });

  it('VLMKIT_ISA: an unknown value or a level the CPU lacks', async () => {
    assertUserError(await vlmkit(['info', MODEL], undefined, { VLMKIT_ISA: 'sse9' }), /VLMKIT_ISA=sse9 .*avx512, avx2 or scalar/);
    const ok = await vlmkit(['info', MODEL, '--json'], undefined, { VLMKIT_ISA: 'scalar' });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).engine.isa, 'scalar');
  });

  it('corrupt image', async () => {
    const bad = join(tmp, 'corrupt.png');
    writeFileSync(bad, readFileSync(IMAGE).subarray(0, 80));
    assertUserError(await vlmkit(['ask', '--model', MODEL, '--image', bad, 'hi']), /corrupt\.png/);
    const txt = join(tmp, 'notes.png');
    writeFileSync(txt, 'not an image at all');
    assertUserError(await vlmkit(['ask', '--model', MODEL, '--image', txt, 'hi']), /unsupported format/);
  });

  it('placeholder / image count mismatch', async () => {
    assertUserError(await vlmkit(['ask', '--model', MODEL, '--image', IMAGE, '<image><image> compare these']), /2 image placeholders.*1 image/);
    assertUserError(await vlmkit(['tokens', '--model', MODEL, '--raw', '<|im_start|>User:<image>hi<end_of_utterance>\nAssistant:']), /1 image placeholder.*0 images/);
  });

  it('bad flags and values', async () => {
    assertUserError(await vlmkit(['ask', '--model', MODEL, '--top-p', '2', 'hi']), /--top-p/);
    assertUserError(await vlmkit(['ask', '--model', MODEL, '--longest-edge', '1.5', 'hi']), /--longest-edge takes a whole number of pixels/);
    // node's own message puts the fix on later lines: it stays on the one line printed
    assertUserError(await vlmkit(['ask', '--model', MODEL, '--temperature', '-1', 'hi']), /ambiguous.*use '--temperature=-XYZ'/);
    assertUserError(await vlmkit(['ask', '--model', MODEL, '--frobnicate', 'hi']), /frobnicate/);
    // without --model, ask uses the built-in model (test/e2e/default-model.test.ts); an empty one is a mistake
    assertUserError(await vlmkit(['ask', '--model', '', 'hi']), /--model takes the folder/);
    assertUserError(await vlmkit(['launch']), /unknown command/);
  });
});
