// `vlmkit serve` as a user starts it: it prints the address it listens on, answers, and exits 0 on SIGTERM; bad
// flags are one-line errors (those run in-process: a spawn costs seconds).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { ROOT } from './spawn-cli.js';
import { run } from '../../src/cli/main.js';

const MODEL = join(ROOT, 'test', 'fixtures', 'reference', 'tiny-smolvlm');

describe('vlmkit serve (CLI)', () => {
  it('listens on a free port, answers, and stops on SIGTERM', async () => {
    const p = spawn(process.execPath, [join(ROOT, 'bin', 'vlmkit.js'), 'serve', '--model', MODEL, '--port', '0', '--model-name', 'tiny'], {
      cwd: ROOT, env: { ...process.env, VLMKIT_CLI_SOURCE: '1', VLMKIT_DEBUG: '' },
    });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => p.on('close', r));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        p.stdout.on('data', (d) => {
          out += d;
          const m = /on (http:\/\/127\.0\.0\.1:\d+) /.exec(out);
          if (m) resolve(m[1]!);
        });
        p.on('close', () => reject(new Error(`exited before listening: ${stderr}`)));
      });
      assert.deepEqual(await (await fetch(`${url}/health`)).json(), { status: 'ok' });
      const r = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, temperature: 0 }),
      });
      assert.equal(r.status, 200);
      const body = (await r.json()) as { model: string; usage: { completion_tokens: number } };
      assert.equal(body.model, 'tiny');
      assert.equal(body.usage.completion_tokens, 3);
    } finally {
      p.kill('SIGTERM');
    }
    assert.equal(await exited, 0, stderr);
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
