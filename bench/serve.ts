// `npm run bench:serve`: the real HTTP server (src/serve) on loopback with SmolVLM-256M-Instruct's shape (random
// bf16 weights written to a temp dir by bench/random-model.ts), under 1, 4 and 16 concurrent streaming clients,
// each sending one request of text + one small image (a 64x64 PNG), all at once. One JSON object per line, as
// bench:engine: machine; the limits (f32 FMA peak, read bandwidth); then per client count: requests/s, time to
// first token p50/p99, the end-to-end generated tokens/s (prefills included), and the engine's decode tokens/s
// (its batched decode steps, from the server's own /metrics counters, prefills excluded) against the batch-1
// decode tokens/s of the same run (target at 16 clients: >= 4x).
// The model's image splitting is turned off in the bench's copy (processor config): an upscaled small image would
// otherwise be 17 tiles of vision encoding per request, and the bench measures the serving, not the vision tower.
//
//   npm run bench:serve
//   npm run bench:serve -- --text-only    prompts without the image (on a machine too busy for 16 vision passes)
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { loadVlm } from '../src/api.js';
import { defaultLimits, startServer } from '../src/serve/server.js';
import { bandwidth, beyondCacheBytes, fmaPeak, fmaVia, machine } from './ceilings.js';
import { writeRandomSmolVLM } from './random-model.js';

type Row = Record<string, unknown>;
const emit = (row: Row): void => void process.stdout.write(JSON.stringify(row) + '\n');
const r3 = (v: number) => Math.round(v * 1000) / 1000;
const note = (s: string): void => void process.stderr.write(`bench: ${s}\n`);

const CLIENTS = [1, 4, 16];
const TEXT_ONLY = process.argv.includes('--text-only');
const ROUNDS = 1;
const MAX_TOKENS = 48;

function smallPng(): string {
  const png = new PNG({ width: 64, height: 64 });
  for (let i = 0; i < 64 * 64; i++) png.data.set([(i * 7) % 256, (i * 13) % 256, (i * 29) % 256, 255], i * 4);
  return `data:image/png;base64,${PNG.sync.write(png).toString('base64')}`;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

interface Timing {
  ttft: number;
  total: number;
  tokens: number;
}

/** One streamed request: seconds to the first content, to the end, and its completion tokens (from usage). */
async function streamOnce(url: string, body: object): Promise<Timing> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (res.status !== 200) throw new Error(`bench: HTTP ${res.status}: ${await res.text()}`);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let raw = '', ttft = NaN;
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    if (Number.isNaN(ttft)) ttft = (performance.now() - t0) / 1e3;
    raw += dec.decode(r.value, { stream: true });
  }
  const events = raw.split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
  if (events.at(-1) !== '[DONE]') throw new Error('bench: a stream did not end with [DONE]');
  const last = JSON.parse(events.at(-2)!);
  if (last.error) throw new Error(`bench: a stream failed: ${JSON.stringify(last.error)}`);
  const tokens = last.usage?.completion_tokens;
  if (!Number.isInteger(tokens) || tokens < 1) throw new Error(`bench: no usage in the last chunk: ${events.at(-2)}`);
  return { ttft, total: (performance.now() - t0) / 1e3, tokens };
}

async function main(): Promise<void> {
  emit({ bench: 'machine', ...machine(), note: 'a shared machine: figures are noisy; compare the ratios' });
  const peak = fmaPeak();
  emit({ bench: 'fma_peak', value: r3(peak.gflops), unit: 'GFLOP/s', isa: peak.isa, threads: peak.threads, via: fmaVia(peak) });
  const rd = bandwidth({ reads: 1, writes: 0 }, beyondCacheBytes());
  emit({ bench: 'bandwidth', kind: 'read', value: r3(rd.gbs), unit: 'GB/s', via: rd.via });

  const dir = mkdtempSync(join(tmpdir(), 'vlmkit-bench-serve-'));
  try {
    note('writing a random SmolVLM-256M-shaped checkpoint...');
    writeRandomSmolVLM(dir, { dtype: 'bf16' });
    const pp = join(dir, 'preprocessor_config.json');
    writeFileSync(pp, JSON.stringify({ ...JSON.parse(readFileSync(pp, 'utf8')), do_image_splitting: false }, null, 2));
    const vlm = await loadVlm(dir);
    const limits = { ...defaultLimits(vlm.model.maxPositions), maxBatch: 16 };
    // every client sends the same picture: with the prefix cache its vision pass would run once, and the bench
    // measures prompts that each run in full
    const server = await startServer({ vlm, modelId: 'bench', limits, host: '127.0.0.1', port: 0, log: note, prefixCacheMb: 0 });
    const image = smallPng();
    const body = (c: number, r: number) => ({
      model: 'bench', stream: true, stream_options: { include_usage: true }, temperature: 0, max_tokens: MAX_TOKENS,
      messages: [{ role: 'user', content: [...(TEXT_ONLY ? [] : [{ type: 'image_url', image_url: { url: image } }]), { type: 'text', text: `client ${c}, request ${r}: what is in this picture?` }] }],
    });
    try {
      // warm-up: one request (first-touch of the weights, the kernels' caches)
      await streamOnce(server.url, body(0, 0));
      let batch1 = NaN;
      for (const clients of CLIENTS) {
        const m = server.metrics;
        const steps0 = m.decodeSteps, tok0 = m.decodeTokens, sec0 = m.decodeSeconds;
        const t0 = performance.now();
        const timings = (await Promise.all(Array.from({ length: clients }, async (_, c) => {
          const out: Timing[] = [];
          for (let r = 0; r < ROUNDS; r++) out.push(await streamOnce(server.url, body(c, r)));
          return out;
        }))).flat();
        const wall = (performance.now() - t0) / 1e3;
        const steps = m.decodeSteps - steps0, decodeTokens = m.decodeTokens - tok0, decodeSeconds = m.decodeSeconds - sec0;
        const decodeRate = decodeTokens / decodeSeconds;
        if (clients === 1) batch1 = decodeRate;
        const generated = timings.reduce((s, t) => s + t.tokens, 0);
        const ttfts = timings.map((t) => t.ttft);
        emit({
          bench: 'serve', clients, requests: timings.length, maxTokens: MAX_TOKENS, image: TEXT_ONLY ? 'none (--text-only)' : '64x64 PNG, 1 tile (image splitting off)',
          requestsPerSec: r3(timings.length / wall), ttftP50S: r3(quantile(ttfts, 0.5)), ttftP99S: r3(quantile(ttfts, 0.99)),
          endToEndTokensPerSec: r3(generated / wall), wallS: r3(wall),
          decodeTokensPerSec: r3(decodeRate), meanBatchRows: r3(decodeTokens / steps),
          vsBatch1: r3(decodeRate / batch1), unit: 'tokens/s',
          via: 'decode: the server\'s batched decode steps (vlmkit_decode_tokens_total / vlmkit_decode_seconds_total over the phase), prefills excluded; end to end: completion tokens / wall time',
          ...(clients === 16 ? { target: 'vsBatch1 >= 4' } : {}),
        });
      }
    } finally {
      await server.close();
      vlm.model.dispose?.();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:serve failed: ${(e as Error)?.stack ?? e}\n`);
  process.exit(1);
});
