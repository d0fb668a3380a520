// `vlmkit ask --video` and chat's /video, spawned as a user runs them, on the tiny SmolVLM2 fixture; and the bad
// inputs (a file ffmpeg cannot read, an empty file, a file with no video stream, no ffmpeg) that must give one
// line on stderr and a non-zero exit before the model loads.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, type Run, vlmkit } from './spawn-cli.js';
import { audioOnly, movingSquare } from '../video/clip.js';

const MODEL = join(ROOT, 'test', 'fixtures', 'reference', 'tiny-smolvlm');
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-video-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const clip = join(tmp, 'square.mp4');
movingSquare(clip);

function assertUserError(r: Run, what: RegExp): void {
  assert.notEqual(r.code, 0, `exit code, stderr: ${r.stderr}`);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected: ${r.stderr}`);
  assert.match(lines[0]!, /^vlmkit: /);
  assert.match(lines[0]!, what);
}

describe('vlmkit ask --video', () => {
  it('--json answers with the video prompt of three frames', async () => {
    const r = await vlmkit(['ask', '--model', MODEL, '--video', clip, '--max-new-tokens', '2', '--json', 'What happens?']);
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout.trim()) as { token_ids: number[]; prompt_tokens: number };
    assert.equal(o.token_ids.length, 2);
    // --max-frames 2 takes one frame block fewer
    const r2 = await vlmkit(['ask', '--model', MODEL, '--video', clip, '--max-frames', '2', '--max-new-tokens', '1', '--json', 'What happens?']);
    assert.equal(r2.code, 0, r2.stderr);
    const o2 = JSON.parse(r2.stdout.trim()) as { prompt_tokens: number };
    assert.ok(o2.prompt_tokens < o.prompt_tokens, `${o2.prompt_tokens} < ${o.prompt_tokens}`);
  });

  it('bad inputs: one line each, non-zero exit', async () => {
    const empty = join(tmp, 'empty.mp4');
    writeFileSync(empty, '');
    const junk = join(tmp, 'junk.mp4');
    writeFileSync(junk, 'this is not a video\n'.repeat(20));
    const sound = join(tmp, 'sound.wav');
    audioOnly(sound);
    const ask = (v: string, env: Record<string, string> = {}) => vlmkit(['ask', '--model', MODEL, '--video', v, 'What happens?'], '', env);
    assertUserError(await ask(join(tmp, 'missing.mp4')), /missing\.mp4 does not exist/);
    assertUserError(await ask(empty), /empty\.mp4 is empty \(0 bytes\)/);
    assertUserError(await ask(junk), /ffmpeg cannot read .*junk\.mp4/);
    assertUserError(await ask(sound), /sound\.wav has no video stream/);
    assertUserError(await ask(clip, { VLMKIT_FFMPEG: join(tmp, 'nowhere', 'ffmpeg') }), /VLMKIT_FFMPEG=.* does not exist; .*apt-get install ffmpeg/);
    assertUserError(await vlmkit(['ask', '--model', MODEL, '--video', clip, '--fps', '0', 'What happens?']), /--fps/);
  });
});

describe('vlmkit chat /video', () => {
  it('attaches a video to the next message; a bad one is an error line and the chat goes on', async () => {
    const r = await vlmkit(['chat', '--model', MODEL, '--max-new-tokens', '2'], `/video ${join(tmp, 'missing.mp4')}\n/video ${clip}\nWhat happens?\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /error: video .*missing\.mp4 does not exist/);
    assert.match(r.stderr, /video .*square\.mp4 attached to your next message/);
    assert.equal(r.stdout.trim().split('\n').length, 1, r.stdout);
  });
});
