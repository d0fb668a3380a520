// `npm run bench:video`: a 10-minute 1080p video (ffmpeg's testsrc, 10 fps, 10 s repeated; made once and cached
// under .bench-tmp/) asked about on a SmolVLM2-256M-shaped random model (bench/random-model.ts's SmolVLM-256M weights,
// with model_type smolvlm and SmolVLM2-256M-Video-Instruct's video_sampling: 1 fps, at most 64 frames, 512 px).
// One JSON object per line, as the other benches: machine; fma_peak (the machine's limit, same run); video (the
// clip); decode (probe + ffmpeg decoding of the 64 sampled frames + their squares, seconds, and the frames per
// second of video ffmpeg got through: the select filter decodes every frame up to the last sampled one);
// ttft (from the call to the first generated token: decode + processor + vision encoding of 64 frames + text
// prefill) with the prefill's approximate GFLOP/s against the FMA peak; rss (the node process's peak resident set:
// must stay under 2 GB; ffmpeg, a child process, is not in it).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as vk from '../src/engine/index.js';
import { loadVlm } from '../src/api.js';
import { findFfmpeg, probeVideo } from '../src/video/index.js';
import { fmaPeak, fmaVia, machine, PeakTracker } from './ceilings.js';
import { SMOLVLM_256M, writeRandomSmolVLM } from './random-model.js';

type Row = Record<string, unknown>;
const emit = (row: Row): void => void process.stdout.write(JSON.stringify(row) + '\n');
const r3 = (v: number) => Math.round(v * 1000) / 1000;
const note = (s: string): void => void process.stderr.write(`bench: ${s}\n`);
const MB = 1 << 20;
const CACHE = join(process.cwd(), '.bench-tmp');
const CLIP = join(CACHE, 'testsrc-600s-1920x1080-10fps.mp4');

/**
 * The clip, made once: 10 s of testsrc encoded, then repeated 60 times by stream copy (no re-encoding: minutes of
 * 1080p encoding saved on a shared machine; the decoder still meets 6,000 real 1080p frames). Written under
 * temporary names first, so a stopped run leaves no half file behind.
 */
function makeClip(): void {
  if (existsSync(CLIP)) return;
  mkdirSync(CACHE, { recursive: true });
  const seg = join(CACHE, 'testsrc-10s-1920x1080-10fps.part.mp4');
  const part = CLIP + '.part.mp4';
  note('making the 10-minute 1080p clip with ffmpeg (once; cached in .bench-tmp/) ...');
  const ff = (args: string[]) => {
    const r = spawnSync(findFfmpeg().ffmpeg, ['-v', 'error', '-y', ...args], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 1_800_000 });
    if (r.status !== 0) throw new Error(`ffmpeg ${args.join(' ')} failed`);
  };
  ff(['-f', 'lavfi', '-i', 'testsrc=size=1920x1080:rate=10:duration=10', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '100', '-pix_fmt', 'yuv420p', seg]);
  ff(['-stream_loop', '59', '-i', seg, '-c', 'copy', part]);
  rmSync(seg);
  renameSync(part, CLIP);
}

/** A random SmolVLM-256M turned into a SmolVLM2-256M-Video-Instruct-shaped checkpoint (model_type, video_sampling). */
function writeModel(dir: string): void {
  writeRandomSmolVLM(dir, { dtype: 'bf16' });
  const cfgPath = join(dir, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, model_type: 'smolvlm', architectures: ['SmolVLMForConditionalGeneration'] }, null, 2));
  const prePath = join(dir, 'preprocessor_config.json');
  const pre = JSON.parse(readFileSync(prePath, 'utf8'));
  writeFileSync(prePath, JSON.stringify({ ...pre, video_sampling: { fps: 1, max_frames: 64, video_size: { longest_edge: 512 } } }, null, 2));
}

async function main(): Promise<void> {
  vk.setDefaultBackend('native');
  emit(machine());
  const peak = new PeakTracker(fmaPeak());
  makeClip();
  const info = await probeVideo(CLIP);
  emit({ bench: 'video', path: CLIP, width: info.width, height: info.height, fps: info.fps, durationS: info.duration, frames: info.frameCount });
  const dir = mkdtempSync(join(tmpdir(), 'vlmkit-bench-video-'));
  try {
    writeModel(dir);
    const vlm = await loadVlm(dir);
    const loadedRss = process.memoryUsage().rss;
    try {
      let lastFrame = 0;
      let frames = 0;
      peak.burst();
      const t0 = performance.now();
      // the decode row is written as soon as the last frame is in (the prefill after it takes long on a busy machine)
      const onVideoFrame = (d: number, total: number) => {
        lastFrame = performance.now();
        frames = d;
        if (d < total) return;
        const decodeS = (lastFrame - t0) / 1e3;
        emit({ bench: 'decode', value: r3(decodeS), unit: 's', frames, videoFramesPerS: r3((info.frameCount - 1) / decodeS), rssMB: r3(process.memoryUsage().rss / MB), what: 'probe + ffmpeg decode (select filter: every frame up to the last sampled one) + 512x512 squares of the sampled frames' });
      };
      const r = await vlm.generate('What happens in this video?', { videos: [CLIP] }, { maxNewTokens: 1, onVideoFrame });
      const t1 = performance.now();
      peak.burst();
      // FLOPs of the prefill, approximately: 2 x weights x tokens for the vision tower (per 1024-patch frame) and
      // the text model (per prompt token), plus attention scores; the connector and norms are left out
      const V = SMOLVLM_256M.vision, T = SMOLVLM_256M.text;
      const patches = (V.imageSize / V.patch) ** 2;
      const visionW = V.layers * (4 * V.hidden * V.hidden + 2 * V.hidden * V.mlp);
      const visionF = frames * (2 * visionW * patches + V.layers * 4 * patches * patches * V.hidden);
      const n = r.promptTokens;
      const textW = T.layers * (T.hidden * T.heads * T.headDim * 2 + 2 * T.hidden * T.kvHeads * T.headDim + 3 * T.hidden * T.mlp);
      const textF = 2 * textW * n + T.layers * 2 * n * n * T.heads * T.headDim;
      const prefillS = r.timings.prefillMs / 1e3;
      const gflops = (visionF + textF) / prefillS / 1e9;
      const top = peak.best;
      emit({ bench: 'fma_peak', value: r3(top.gflops), unit: 'GFLOP/s', isa: top.isa, threads: top.threads, via: `${fmaVia(top)}: best of ${peak.samples} samples over the run` });
      emit({
        bench: 'ttft', value: r3((t1 - t0) / 1e3), unit: 's', frames, promptTokens: n, prefillS: r3(prefillS),
        prefillGflops: r3(gflops), ceiling: r3(top.gflops), ceilingVia: fmaVia(top), ratio: r3(gflops / top.gflops),
        what: 'generate(..., {videos: [clip]}, {maxNewTokens: 1}): decode + processor + vision encoding + prefill + first token; prefill GFLOP/s approximate',
      });
    } finally {
      vlm.dispose();
    }
    const peakRss = process.resourceUsage().maxRSS * 1024;
    emit({ bench: 'rss', value: r3(peakRss / MB), unit: 'MB', limitMB: 2048, ok: peakRss < 2048 * MB, afterLoadMB: r3(loadedRss / MB), what: 'peak resident set of the node process (ffmpeg is a child process, not counted)' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
