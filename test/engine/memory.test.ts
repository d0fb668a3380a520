// Memory discipline: a long forward+backward loop releases every buffer deterministically, RSS stays flat, and
// the engine can run inside a worker thread while the main thread stays responsive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import * as vk from '../../src/engine/index.js';
import { nat } from './harness.js';

test('1,000 forward+backward iterations do not grow RSS or leak buffers', () => {
  const w1 = vk.randn([256, 128], { backend: nat, seed: 1, std: 0.05, requiresGrad: true });
  const w2 = vk.randn([64, 256], { backend: nat, seed: 2, std: 0.05, requiresGrad: true });
  const x = vk.randn([32, 128], { backend: nat, seed: 3 });
  const step = () =>
    vk.tidy(() => {
      const h = vk.silu(vk.linear(x, w1));
      const y = vk.rmsNorm(vk.linear(h, w2), null, 1e-5);
      const loss = vk.mean(vk.square(y));
      vk.backward(loss);
      w1.grad!.dispose(); w1.grad = null;
      w2.grad!.dispose(); w2.grad = null;
      return loss.item();
    });
  for (let i = 0; i < 100; i++) step(); // warm-up: allocator pools, JIT
  const baseCount = vk.storageStats().count;
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < 1000; i++) step();
  global.gc?.();
  const rss1 = process.memoryUsage().rss;
  assert.equal(vk.storageStats().count, baseCount, 'every buffer made in the loop was released');
  const growMB = (rss1 - rss0) / 1e6;
  console.log(`RSS growth over 1000 iterations: ${growMB.toFixed(1)} MB`);
  assert.ok(growMB < 20, `RSS grew by ${growMB.toFixed(1)} MB`);
});

test('the engine runs in a worker thread while the main thread stays responsive', async () => {
  const src = `
    const { parentPort } = require('node:worker_threads');
    // The worker has its own module loader: register tsx there so it can import the TypeScript sources.
    import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(new URL('../../src/engine/index.ts', import.meta.url).href)}); }).then((vk) => {
      const a = vk.randn([512, 512], { seed: 1 });
      let s = 0;
      for (let i = 0; i < 20; i++) s += vk.tidy(() => vk.sum(vk.matmul(a, a)).item());
      parentPort.postMessage(Number.isFinite(s) ? 'ok' : 'bad');
    }, (e) => parentPort.postMessage('error: ' + e.message));
  `;
  const worker = new Worker(src, { eval: true });
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const msg = await new Promise<string>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  clearInterval(timer);
  await worker.terminate();
  assert.equal(msg, 'ok');
  assert.ok(ticks > 0, 'main thread timers ran while the worker computed');
});
