// Loss curves as pictures: the lines land where their values say, and `vlmkit plot` reads a run's metrics.jsonl.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable, Readable } from 'node:stream';
import { linePlot, logTicks, lossSeries, ticks } from '../../src/eval/plot.js';
import { plot } from '../../src/cli/plot.js';
import { loadImage } from '../../src/processing/decode.js';

test('ticks are round steps covering the range', () => {
  assert.deepEqual(ticks(0, 10), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(ticks(0.3, 1.2), [0.4, 0.6, 0.8, 1, 1.2]);
  assert.deepEqual(ticks(5, 5), [5]);
});

test('a log axis gets its powers of ten, or round values where it spans less than a decade', () => {
  assert.deepEqual(logTicks(-1.2, 1.1), [0.1, 1, 10]);
  // a fine-tuning phase's loss, 0.35 to 0.9: no power of ten inside, so linear steps, all inside the range
  const t = logTicks(Math.log10(0.35), Math.log10(0.9));
  assert.ok(t.length >= 3, JSON.stringify(t));
  assert.ok(t.every((v) => v >= 0.35 && v <= 0.9), JSON.stringify(t));
});

test('linePlot: a rising line goes from bottom left to top right in its colour', () => {
  const red = [255, 0, 0] as const;
  const c = linePlot([{ name: 'a', points: [[0, 0], [10, 10]], colour: red, width: 3 }], { width: 400, height: 300 });
  const isRed = (x: number, y: number) => {
    const i = (y * c.width + x) * 3;
    return c.data[i]! > 200 && c.data[i + 1]! < 60 && c.data[i + 2]! < 60;
  };
  const redPixels: [number, number][] = [];
  for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) if (isRed(x, y)) redPixels.push([x, y]);
  assert.ok(redPixels.length > 200, `${redPixels.length} red pixels`);
  // the leftmost red pixels are lower on the picture than the rightmost (y grows downwards)
  const byX = redPixels.sort((a, b) => a[0] - b[0]);
  const left = byX.slice(0, 20), right = byX.slice(-20);
  const meanY = (p: [number, number][]) => p.reduce((s, q) => s + q[1], 0) / p.length;
  assert.ok(meanY(left) > meanY(right) + 100, `left ${meanY(left)} right ${meanY(right)}`);
  assert.throws(() => linePlot([{ name: 'x', points: [[0, NaN]], colour: red }]), /no finite points/);
});

test('lossSeries: train loss, a running mean once there are enough steps, eval loss; skipped steps left out', () => {
  const lines = [
    ...Array.from({ length: 6 }, (_, i) => ({ type: 'train', step: i + 1, loss: 6 - i })),
    { type: 'train', step: 7, loss: 1e9, skipped: true },
    { type: 'eval', step: 6, eval_loss: 2.5 },
  ];
  const s = lossSeries(lines, 3);
  assert.deepEqual(s.map((x) => x.name), ['train loss', 'mean of 3', 'eval loss']);
  assert.equal(s[0]!.points.length, 6);
  assert.deepEqual(s[1]!.points[0], [3, 5]);
  assert.deepEqual(s[2]!.points, [[6, 2.5]]);
});

test('vlmkit plot writes a PNG beside metrics.jsonl; a truncated last line is skipped; no records is an error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vlmkit-plot-'));
  const sink = () => {
    const chunks: string[] = [];
    const w = new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb(); } });
    return { w, text: () => chunks.join('') };
  };
  try {
    const rows = Array.from({ length: 80 }, (_, i) => JSON.stringify({ type: 'train', step: i + 1, loss: 5 / (i + 1) }));
    writeFileSync(join(dir, 'metrics.jsonl'), rows.join('\n') + '\n{"type":"tra');
    const out = sink();
    const io = { stdout: out.w, stderr: sink().w, stdin: Readable.from([]) };
    assert.equal(await plot([dir, '--json'], io as never), 0);
    const j = JSON.parse(out.text());
    assert.deepEqual([j.out, j.train_steps, j.skipped_lines], [`${dir}/loss.png`, 80, 1]);
    const img = await loadImage(j.out);
    assert.deepEqual([img.width, img.height], [720, 420]);
    writeFileSync(join(dir, 'empty.jsonl'), '{"type":"event"}\n');
    await assert.rejects(plot([join(dir, 'empty.jsonl')], io as never), /no train or eval records/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
