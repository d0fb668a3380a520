// A soak test of `vlmkit serve`: 16 clients on loopback send a mix of valid and malformed requests (bad JSON,
// missing fields, wrong types, an unknown model, images over the byte or pixel limits or not images at all, clients that
// hang up mid-stream or mid-body) for a while. The server (its own process, the tiny fixture model) must not
// crash, its memory must stay flat after a warm-up, and every valid request must be answered.
//
//   npm run soak -- --duration 300     (soak.test.ts runs a 20-s version)
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { IMAGES, MODEL, ROOT } from './helpers.js';

export interface SoakOptions {
  durationS: number;
  clients?: number;
  /** seconds between RSS samples */
  sampleS?: number;
  /** seconds of warm-up before RSS counts */
  warmupS?: number;
  log?: (line: string) => void;
}

export interface SoakReport {
  durationS: number;
  /** requests sent, by kind */
  sent: Record<string, number>;
  validSent: number;
  validAnswered: number;
  /** what went wrong: a valid request not answered, a malformed one not refused as expected */
  failures: string[];
  /** the server process ended (or /health failed at the end) */
  crashed: boolean;
  /** [seconds since start, RSS MiB] */
  rss: [number, number][];
  /** RSS after warm-up: the first samples' median and the last samples' median, MiB */
  rssStartMiB: number;
  rssEndMiB: number;
  rssGrowth: number;
}

const MAX_IMAGE_BYTES = 64 * 1024;

/** mulberry32: the same sequence of request kinds on every run */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

type Check = (status: number, body: string) => string | null;

const refused = (status: number, code?: string): Check => (s, body) => {
  if (s !== status) return `wanted ${status}, got ${s}: ${body.slice(0, 200)}`;
  try {
    const e = JSON.parse(body).error;
    if (typeof e?.message !== 'string') return `no OpenAI error body: ${body.slice(0, 200)}`;
    if (code !== undefined && e.code !== code) return `wanted code ${code}, got ${e.code}`;
  } catch {
    return `not JSON: ${body.slice(0, 200)}`;
  }
  return null;
};

export async function soak(o: SoakOptions): Promise<SoakReport> {
  const log = o.log ?? (() => undefined);
  const clients = o.clients ?? 16;
  const sampleS = o.sampleS ?? Math.max(1, Math.min(5, o.durationS / 20));
  const warmupS = o.warmupS ?? o.durationS * 0.25;
  const server = spawn(process.execPath, [
    join(ROOT, 'bin', 'vlmkit.js'), 'serve', '--model', MODEL, '--model-name', 'tiny', '--port', '0',
    '--max-image-bytes', String(MAX_IMAGE_BYTES), '--max-tokens', '16',
  ], { cwd: ROOT, env: { ...process.env, VLMKIT_CLI_SOURCE: '1', VLMKIT_DEBUG: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  server.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  let exited = false;
  server.on('exit', () => (exited = true));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    server.stdout!.on('data', (d) => {
      out += d;
      const m = /on (http:\/\/127\.0\.0\.1:\d+) /.exec(out);
      if (m) resolve(m[1]!);
    });
    server.on('exit', () => reject(new Error(`the server exited before listening: ${stderr}`)));
  });
  const endpoint = `${url}/v1/chat/completions`;
  const port = Number(new URL(url).port);
  const image = readFileSync(join(IMAGES, 'square_64x64.png')).toString('base64');
  const huge = Buffer.alloc(MAX_IMAGE_BYTES + 1000, 7).toString('base64');
  // a PNG header that declares 30000x30000 pixels (over the limit, refused before anything decodes it)
  const ihdr = Buffer.alloc(33);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(ihdr, 0);
  ihdr.writeUInt32BE(13, 8);
  ihdr.write('IHDR', 12, 'latin1');
  ihdr.writeUInt32BE(30000, 16);
  ihdr.writeUInt32BE(30000, 20);
  ihdr[24] = 8;
  ihdr[25] = 2;
  const manyPixels = ihdr.toString('base64');
  const notImage = Buffer.from('this is not a picture at all, just text').toString('base64');
  const user = (content: unknown) => [{ role: 'user', content }];
  const withImage = (b64: string, text: string) => user([{ type: 'image_url', image_url: { url: `data:image/png;base64,${b64}` } }, { type: 'text', text }]);

  const sent: Record<string, number> = {};
  const failures: string[] = [];
  let validSent = 0;
  let validAnswered = 0;
  const t0 = Date.now();
  const end = t0 + o.durationS * 1000;

  async function send(kind: string, body: string, check: Check, signal?: AbortSignal): Promise<void> {
    const res = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal });
    const text = await res.text();
    const why = check(res.status, text);
    if (why) failures.push(`${kind}: ${why}`);
  }

  const kinds: Record<string, (r: () => number) => Promise<void>> = {
    async valid(r) {
      validSent++;
      const stream = r() < 0.5;
      const body = { model: 'tiny', max_tokens: 1 + Math.floor(r() * 8), temperature: 0, stream, messages: r() < 0.5 ? withImage(image, 'what is it?') : user(`say ${Math.floor(r() * 1000)}`) };
      const res = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const text = await res.text();
      const ok = res.status === 200 && (stream ? text.endsWith('data: [DONE]\n\n') && !text.includes('"error"') : typeof JSON.parse(text).choices?.[0]?.message?.content === 'string');
      if (ok) validAnswered++;
      else failures.push(`valid${stream ? ' stream' : ''}: HTTP ${res.status} ${text.slice(0, 200)}`);
    },
    'bad-json': () => send('bad-json', '{"model": "tiny", "messages": [', refused(400, 'invalid_json')),
    'missing-messages': () => send('missing-messages', JSON.stringify({ model: 'tiny' }), refused(400)),
    'wrong-type': () => send('wrong-type', JSON.stringify({ model: 'tiny', messages: user('hi'), max_tokens: 'many' }), refused(400)),
    'unknown-model': () => send('unknown-model', JSON.stringify({ model: 'gpt-9', messages: user('hi') }), refused(404, 'model_not_found')),
    'huge-image': () => send('huge-image', JSON.stringify({ model: 'tiny', messages: withImage(huge, 'hi') }), refused(400, 'image_too_large')),
    'huge-pixels': () => send('huge-pixels', JSON.stringify({ model: 'tiny', messages: withImage(manyPixels, 'hi') }), refused(400, 'image_too_large')),
    'not-an-image': () => send('not-an-image', JSON.stringify({ model: 'tiny', messages: withImage(notImage, 'hi') }), refused(400, 'invalid_image')),
    async 'hang-up-stream'(r) {
      // leaves after the first piece of a long answer
      const ctl = new AbortController();
      const res = await fetch(endpoint, { method: 'POST', signal: ctl.signal, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny', max_tokens: 16, temperature: 0, stream: true, messages: user(`go on ${r()}`) }) });
      if (res.status !== 200) failures.push(`hang-up-stream: HTTP ${res.status}`);
      await res.body!.getReader().read();
      ctl.abort();
    },
    async 'hang-up-body'() {
      // promises 10,000 bytes, sends 20, leaves
      await new Promise<void>((resolve) => {
        const sock = connect(port, '127.0.0.1', () => {
          sock.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 10000\r\n\r\n{"model": "tiny", "m`);
          setTimeout(() => sock.destroy(), 20);
        });
        sock.on('error', () => undefined);
        sock.on('close', () => resolve());
      });
    },
  };
  // half the requests valid, the rest spread over the malformed kinds
  const names = Object.keys(kinds);
  const bad = names.filter((k) => k !== 'valid');

  const rss: [number, number][] = [];
  const sampler = setInterval(() => {
    // the soak's own time only: not the last answers draining after it
    if (!exited && Date.now() < end) rss.push([(Date.now() - t0) / 1000, rssMiB(server.pid!)]);
  }, sampleS * 1000);

  async function client(i: number): Promise<void> {
    const r = rng(i + 1);
    while (Date.now() < end && !exited) {
      const kind = r() < 0.5 ? 'valid' : bad[Math.floor(r() * bad.length)]!;
      sent[kind] = (sent[kind] ?? 0) + 1;
      try {
        await kinds[kind]!(r);
      } catch (e) {
        if (kind === 'valid' || !/abort/i.test(String(e))) failures.push(`${kind}: ${(e as Error).message}`);
      }
    }
  }
  const progress = setInterval(() => log(`soak: ${Math.round((Date.now() - t0) / 1000)} s, ${validAnswered}/${validSent} valid answered, ${failures.length} failures, RSS ${rss.at(-1)?.[1].toFixed(1) ?? '?'} MiB`), 30_000);
  await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
  clearInterval(sampler);
  clearInterval(progress);

  let crashed = exited;
  if (!crashed) {
    const h = await fetch(`${url}/health`).then((x) => x.status, () => 0);
    crashed = h !== 200;
  }
  server.kill('SIGTERM');
  await new Promise((r) => (exited ? r(null) : server.on('exit', r)));
  if (crashed) failures.push(`the server crashed: ${stderr.slice(-1000)}`);

  const after = rss.filter(([t]) => t >= warmupS).map(([, m]) => m);
  const k = Math.max(1, Math.floor(after.length / 4));
  const rssStartMiB = median(after.slice(0, k));
  const rssEndMiB = median(after.slice(-k));
  return {
    durationS: o.durationS, sent, validSent, validAnswered, failures, crashed, rss, rssStartMiB, rssEndMiB,
    rssGrowth: rssEndMiB / rssStartMiB - 1,
  };
}

// npm run soak -- --duration 300
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, '/'))) {
  const { values } = parseArgs({ options: { duration: { type: 'string', default: '300' }, clients: { type: 'string', default: '16' } } });
  const durationS = Number(values.duration);
  const clients = Number(values.clients);
  if (!(durationS > 0) || !Number.isInteger(clients) || clients < 1) {
    process.stderr.write('usage: npm run soak -- [--duration SECONDS] [--clients N]\n');
    process.exit(1);
  }
  const r = await soak({ durationS, clients, log: (l) => process.stderr.write(l + '\n') });
  const { rss, ...summary } = r;
  process.stdout.write(JSON.stringify({ ...summary, rssSamples: rss.length, rssMinMiB: Math.min(...rss.map((x) => x[1])), rssMaxMiB: Math.max(...rss.map((x) => x[1])) }, null, 2) + '\n');
  const ok = !r.crashed && r.failures.length === 0 && r.validAnswered === r.validSent && r.validSent > 0 && Number.isFinite(r.rssGrowth) && r.rssGrowth < 0.05;
  process.stdout.write(ok ? 'soak: passed\n' : 'soak: FAILED\n');
  process.exit(ok ? 0 : 1);
}
