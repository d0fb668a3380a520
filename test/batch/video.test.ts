// Video rows in `vlmkit batch`: {"id", "video", "fps"?, "max_frames"?, "prompt"} is answered exactly as
// `vlmkit ask --video` answers it (same text, prompt and answer lengths), two video rows sharing a generation
// too; a video ffmpeg cannot read, a missing one, one with no video stream and bad fps / max_frames are error
// rows and the job goes on.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, vlmkit } from '../e2e/spawn-cli.js';
import { audioOnly, ffmpeg, movingSquare } from '../video/clip.js';
import { picture } from './pictures.js';
import { batchCli } from './run-batch.js';

const MODEL = join(ROOT, 'test', 'fixtures', 'reference', 'tiny-smolvlm');
const Q = 'What happens in the video?';

interface AskJson {
  raw_text: string;
  token_ids: number[];
  prompt_tokens: number;
  finish_reason: string;
}

interface ResultLine {
  id: string;
  text: string;
  error?: string;
  prompt_tokens: number;
  completion_tokens: number;
  finish_reason: string;
}

async function ask(video: string, extra: string[]): Promise<AskJson> {
  const r = await vlmkit(['ask', '--model', MODEL, '--video', video, '--temperature', '0', '--max-new-tokens', '4', ...extra, '--json', Q]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim()) as AskJson;
}

describe('vlmkit batch with videos', () => {
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'vlmkit-batch-video-'));
    movingSquare(join(tmp, 'square.mp4'), 3);
    // a second, different clip: a blue square moving down for 4 seconds
    ffmpeg(['-f', 'lavfi', '-i', 'color=c=white:s=64x64:r=8:d=4', '-f', 'lavfi', '-i', 'color=c=blue:s=10x10:r=8:d=4',
      '-filter_complex', "[0][1]overlay=x=20:y='10*t':eval=frame", '-c:v', 'libx264', '-pix_fmt', 'yuv444p', '-qp', '0', join(tmp, 'down.mp4')]);
    audioOnly(join(tmp, 'sound.wav'));
    writeFileSync(join(tmp, 'junk.mp4'), 'this is not a video\n'.repeat(20));
    writeFileSync(join(tmp, 'pic.png'), picture(3));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('answers video rows as ask --video does; bad videos are error rows', async () => {
    const s = { temperature: 0, max_tokens: 4 };
    const input = join(tmp, 'rows.jsonl');
    writeFileSync(input, [
      { id: 'square', video: 'square.mp4', prompt: Q, sampling: s },
      { id: 'down', video: 'down.mp4', prompt: Q, sampling: s },
      { id: 'junk', video: 'junk.mp4', prompt: Q, sampling: s },
      { id: 'square-2', video: 'square.mp4', max_frames: 2, prompt: Q, sampling: s },
      { id: 'missing', video: 'missing.mp4', prompt: Q, sampling: s },
      { id: 'sound', video: 'sound.wav', prompt: Q, sampling: s },
      { id: 'down-fps', video: 'down.mp4', fps: 0.5, prompt: Q, sampling: s },
      { id: 'fps-no-video', image: 'pic.png', fps: 2, prompt: Q, sampling: s },
      { id: 'bad-fps', video: 'down.mp4', fps: 0, prompt: Q, sampling: s },
      { id: 'picture', image: 'pic.png', prompt: Q, sampling: s },
    ].map((r) => JSON.stringify(r)).join('\n') + '\n');
    const out = join(tmp, 'out.jsonl');
    const r = await batchCli(MODEL, ['--input', input, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /batch: 10\/10 rows, 5 errors/);
    const got: Record<string, ResultLine> = Object.fromEntries(readFileSync(out, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as ResultLine).map((l) => [l.id, l]));
    assert.deepEqual(Object.keys(got), ['square', 'down', 'junk', 'square-2', 'missing', 'sound', 'down-fps', 'fps-no-video', 'bad-fps', 'picture']);

    // 'square' and 'down' ran in one generation, the others alone (their sampling differs): each equals ask's answer
    const cases: [string, string, string[]][] = [['square', 'square.mp4', []], ['down', 'down.mp4', []], ['square-2', 'square.mp4', ['--max-frames', '2']], ['down-fps', 'down.mp4', ['--fps', '0.5']]];
    const promptTokens: Record<string, number> = {};
    for (const [id, file, extra] of cases) {
      const a = await ask(join(tmp, file), extra);
      const b = got[id]!;
      assert.ok(b, id);
      assert.equal(b.error, undefined, `${id}: ${b.error}`);
      assert.equal(b.text.trim(), a.raw_text, id);
      assert.equal(b.prompt_tokens, a.prompt_tokens, id);
      assert.equal(b.completion_tokens, a.token_ids.length, id);
      assert.equal(b.finish_reason, a.finish_reason, id);
      promptTokens[id] = b.prompt_tokens;
    }
    // the row's max_frames and fps took effect: fewer frames, a shorter prompt
    assert.ok(promptTokens['square-2']! < promptTokens.square!, `${promptTokens['square-2']} < ${promptTokens.square}`);
    assert.ok(promptTokens['down-fps']! < promptTokens.down!, `${promptTokens['down-fps']} < ${promptTokens.down}`);

    assert.match(got.junk!.error!, /ffmpeg cannot read .*junk\.mp4/);
    assert.match(got.missing!.error!, /missing\.mp4 does not exist/);
    assert.match(got.sound!.error!, /sound\.wav has no video stream/);
    assert.match(got['fps-no-video']!.error!, /"fps" applies to a "video"/);
    assert.match(got['bad-fps']!.error!, /"fps" must be a number of frames per second > 0, e\.g\. 1, got 0/);
    for (const l of Object.values(got)) if (l.error !== undefined) assert.ok(!String(l.error).includes('\n'), 'one line');
    assert.equal(typeof got.picture!.text, 'string');
  });

  it('--max-frames is the default of video rows that give none', async () => {
    const input = join(tmp, 'rows-default.jsonl');
    writeFileSync(input, JSON.stringify({ id: 'square', video: 'square.mp4', prompt: Q }) + '\n');
    const out = join(tmp, 'out-default.jsonl');
    const r = await batchCli(MODEL, ['--input', input, '--out', out, '--temperature', '0', '--max-new-tokens', '4', '--max-frames', '2']);
    assert.equal(r.code, 0, r.stderr);
    const b = JSON.parse(readFileSync(out, 'utf8'));
    const a = await ask(join(tmp, 'square.mp4'), ['--max-frames', '2']);
    assert.equal(b.text.trim(), a.raw_text);
    assert.equal(b.prompt_tokens, a.prompt_tokens);
  });
});
