// `vlmkit serve` as a user starts it: it prints the address it listens on, answers, and exits 0 on SIGTERM; with
// --adapter it answers as the library does with the adapter loaded; bad flags are one-line errors (those run
// in-process: a spawn costs seconds).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { ROOT } from './spawn-cli.js';
import { run } from '../../src/cli/main.js';
import { loadVlm } from '../../src/api.js';
import { loadAdapter } from '../../src/train/peft.js';

const MODEL = join(ROOT, 'test', 'fixtures', 'reference', 'tiny-smolvlm');
const IDEFICS3 = join(ROOT, 'test', 'fixtures', 'reference', 'tiny-idefics3');
const LORA = join(ROOT, 'test', 'fixtures', 'reference', 'tiny-idefics3-lora');

/** Starts `vlmkit serve args...` and resolves with its URL and a stop() that sends SIGTERM and gives the exit code. */
async function serveCli(args: string[]): Promise<{ url: string; stop: () => Promise<number | null>; stderr: () => string }> {
  const p = spawn(process.execPath, [join(ROOT, 'bin', 'vlmkit.js'), 'serve', ...args, '--port', '0'], {
    cwd: ROOT, env: { ...process.env, VLMKIT_CLI_SOURCE: '1', VLMKIT_DEBUG: '' },
  });
  let stderr = '';
  p.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => p.on('close', r));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
      const m = /on (http:\/\/127\.0\.0\.1:\d+) /.exec(out);
      if (m) resolve(m[1]!);
    });
    p.on('close', () => reject(new Error(`exited before listening: ${stderr}`)));
  });
  return { url, stderr: () => stderr, stop: async () => { p.kill('SIGTERM'); return exited; } };
}

describe('vlmkit serve (CLI)', () => {
  it('listens on a free port, answers, and stops on SIGTERM', async () => {
    const s = await serveCli(['--model', MODEL, '--model-name', 'tiny']);
    try {
      assert.deepEqual(await (await fetch(`${s.url}/health`)).json(), { status: 'ok' });
      const r = await fetch(`${s.url}/v1/chat/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, temperature: 0 }),
      });
      assert.equal(r.status, 200);
      const body = (await r.json()) as { model: string; usage: { completion_tokens: number } };
      assert.equal(body.model, 'tiny');
      assert.equal(body.usage.completion_tokens, 3);
    } finally {
      assert.equal(await s.stop(), 0, s.stderr());
    }
  });

  it('--adapter serves the model with a LoRA adapter: greedy answers equal the library\'s with the adapter, not without', async () => {
    const question = 'Describe the picture in a few words.';
    const vlm = await loadVlm(IDEFICS3);
    let base: number[], adapted: number[];
    try {
      const ask = async () => (await vlm.generate(question, {}, { maxNewTokens: 8, temperature: 0 })).tokenIds;
      base = await ask();
      loadAdapter(vlm.model, LORA);
      adapted = await ask();
    } finally {
      vlm.dispose();
    }
    assert.notDeepEqual(adapted, base, 'the fixture adapter changes the answer (else this test could not fail)');
    const s = await serveCli(['--model', IDEFICS3, '--adapter', LORA, '--model-name', 'tiny']);
    try {
      const r = await fetch(`${s.url}/v1/chat/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: question }], max_tokens: 8, temperature: 0, logprobs: true }),
      });
      assert.equal(r.status, 200);
      const body = (await r.json()) as { choices: { logprobs: { content: { token: string }[] } }[] };
      const vlm2 = await loadVlm(IDEFICS3);
      try {
        const want = adapted.map((id) => vlm2.tokenizer.decode([id], { skipSpecialTokens: false }));
        const got = body.choices[0]!.logprobs.content.map((t) => t.token);
        assert.deepEqual(got, want.slice(0, got.length));
        assert.ok(got.length >= Math.min(want.length, 1));
      } finally {
        vlm2.dispose();
      }
    } finally {
      assert.equal(await s.stop(), 0, s.stderr());
    }
  });

  it('--adapter with a folder that is not an adapter is a one-line error, before listening', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let err = '';
    stderr.on('data', (d) => (err += d));
    const code = await run(['serve', '--model', IDEFICS3, '--adapter', MODEL], { stdout, stderr, stdin: new PassThrough() });
    assert.equal(code, 1, err);
    const lines = err.trimEnd().split('\n').filter((l) => l.startsWith('vlmkit: '));
    assert.equal(lines.length, 1, err);
    assert.match(lines[0]!, /adapter/i);
  });

  for (const [args, what] of [
    [['--port', 'eighty'], /--port takes an integer >= 0, got "eighty"/],
    [['--port', '70000'], /--port takes 0\.\.65535/],
    [['--max-queue', '0'], /--max-queue takes an integer >= 1/],
    [['--max-batch', '0'], /--max-batch takes an integer >= 1/],
    [['--request-timeout=0'], /--request-timeout takes a number of seconds in \(0, 86400\], got "0"/],
    [['--media-path', '/no/such/dir'], /--media-path \/no\/such\/dir is not a folder/],
    [['--api-key', ''], /--api-key must not be empty/],
    [['--bogus'], /Unknown option '--bogus'/],
  ] as const) {
    it(`${args.join(' ')} is a one-line error`, async () => {
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let err = '';
      stderr.on('data', (d) => (err += d));
      const code = await run(['serve', '--model', MODEL, ...args], { stdout, stderr, stdin: new PassThrough() });
      const r = { code, stderr: err };
      assert.equal(r.code, 1, r.stderr);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /^vlmkit: /);
      assert.match(lines[0]!, what);
    });
  }
});
