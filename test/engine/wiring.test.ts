// The backends and the gradient accumulator are wired explicitly: an entry point that imports a single engine
// file (not src/engine/index.ts) gets the same default backend and a working backward(). Each case runs in its
// own process, since a module imported once by this file would hide what the others import.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

function runAlone(code: string): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, `child failed:\n${r.stderr}`);
  return r.stdout.trim();
}

test('importing only ops/create.ts makes tensors on the native backend (the addon is built for the tests)', () => {
  const name = runAlone(`
    import { tensor } from './src/engine/ops/create.ts';
    console.log(tensor([1, 2], [2]).backend.name);
  `);
  assert.equal(name, 'native');
});

test('importing only autograd.ts and ops/matmul.ts: backward accumulates a gradient used twice', () => {
  // y = a·aᵀ = a0² + a1², dy/da = 2a; a appears twice in the graph, so its gradients are summed
  const out = runAlone(`
    import { tensor } from './src/engine/ops/create.ts';
    import { matmul } from './src/engine/ops/matmul.ts';
    import { backward } from './src/engine/autograd.ts';
    const a = tensor([3, -2], [1, 2]);
    a.requireGrad(true);
    backward(matmul(a, a, { transB: true }));
    console.log(JSON.stringify(Array.from(a.grad.toFloat32Array())));
  `);
  assert.deepEqual(JSON.parse(out), [6, -4]);
});
