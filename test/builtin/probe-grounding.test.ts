// scripts/probe-grounding.ts (linear probes of where the built-in model's decoder carries a box's coordinates): its
// ridge probe finds a linear target and not noise, and a run on a small `vlmkit data shapes` dataset with the
// shipped model reports every position x target, after checking each row against its regenerated scene.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { BUILTIN_MODEL_DIR } from '../../src/api.js';
import { run } from '../../src/cli/main.js';
import { Rng } from '../../src/data/rng.js';
import { axisShare, firstTokenAim, POSITIONS, ridgeProbe, TARGETS } from '../../scripts/probe-grounding.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-probe-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const SCRIPT = resolve('scripts/probe-grounding.ts');

describe('probe-grounding', () => {
  it('ridgeProbe: a linear target plus small noise scores R² > 0.95, pure noise < 0.2', () => {
    const rng = new Rng(11);
    const gauss = () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
    const n = 240, d = 48, fit = 170;
    const X = Array.from({ length: n }, () => Float32Array.from({ length: d }, gauss));
    const w = Array.from({ length: d }, gauss);
    const linearY = X.map((x) => 40 + x.reduce((s, v, j) => s + v * w[j]!, 0) + 0.3 * gauss());
    const noiseY = X.map(() => 40 + 10 * gauss());
    const good = ridgeProbe(X, linearY, fit);
    assert.ok(good.r2 > 0.95, `linear target: R² ${good.r2} (λ ${good.lambda})`);
    const bad = ridgeProbe(X, noiseY, fit);
    assert.ok(bad.r2 < 0.2, `noise target: R² ${bad.r2} (λ ${bad.lambda})`);
    // the test rows choose nothing: changing them leaves λ as it was
    const shuffled = [...linearY.slice(0, fit), ...noiseY.slice(fit)];
    assert.equal(ridgeProbe(X, shuffled, fit).lambda, good.lambda);
  });

  it('axisShare: the share of the variance linear in a target, whatever the probe could read', () => {
    const rng = new Rng(12);
    const gauss = () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
    const n = 4000, d = 16;
    const t = Array.from({ length: n }, () => 50 + 20 * gauss());
    // a slope of 0.1 per unit along one dimension (part std 2) and unit noise in all 16 (whole std² 4 + 16)
    const V = t.map((ti) => Float32Array.from({ length: d }, (_, j) => (j === 3 ? 0.1 * ti : 0) + gauss()));
    const a = axisShare(V, t);
    assert.ok(Math.abs(a.share - 4 / 20) < 0.015, `share ${a.share}, expected 0.20`);
    assert.ok(Math.abs(a.part_std - 2) < 0.1 && Math.abs(a.total_std - Math.sqrt(20)) < 0.15, JSON.stringify(a));
    // a target the vectors do not hold: near 0 (chance: 16 slopes fit to noise, about 1/n each)
    const other = Array.from({ length: n }, gauss);
    assert.ok(axisShare(V, other).share < 0.01);
    assert.throws(() => axisShare(V, new Array(n).fill(1)), /does not vary/);
  });

  it('firstTokenAim: on target within 4 px, else on the topmost top, and the uniform guess of several objects', () => {
    // size 128: bin b is b / 1023 * 128 px; bin 80 is 10.0 px, bin 400 is 50.05 px
    const rows = [
      { box: { y0: 10 }, topmostY0: 10, objects: 1 }, // on target, one object
      { box: { y0: 50 }, topmostY0: 10, objects: 2 }, // on target, several
      { box: { y0: 50 }, topmostY0: 10, objects: 4 }, // on the topmost instead
      { box: { y0: 90 }, topmostY0: 30, objects: 3 }, // on neither
      { box: { y0: 10 }, topmostY0: 10, objects: 2 }, // not a <loc>: on nothing
    ];
    const aim = firstTokenAim(rows, [80, 400, 80, 80, null], 128);
    assert.deepEqual(aim, { one: 1, several: 4, on_target_one: 1, on_target_several: 1, on_topmost_instead: 1, uniform_guess_several: 1.6 });
    // 4 px is the edge: bin 112 is 14.01 px, 4.01 px from a top at 10
    assert.equal(firstTokenAim([{ box: { y0: 10 }, topmostY0: 0, objects: 1 }], [112], 128).on_target_one, 0);
    assert.equal(firstTokenAim([{ box: { y0: 10 }, topmostY0: 0, objects: 1 }], [111], 128).on_target_one, 1);
  });

  it('runs on a small shapes dataset with the shipped model, and refuses rows its scenes do not match', async () => {
    const data = join(tmp, 'shapes');
    const sink = () => new PassThrough().resume();
    const err = new PassThrough();
    let stderr = '';
    err.on('data', (c) => (stderr += c));
    const code = await run(['data', 'shapes', '--n', '40', '--seed', '3', '--questions', '3', '--weights', 'grounding=5', '--out', data], { stdout: sink(), stderr: err, stdin: new PassThrough() });
    assert.equal(code, 0, stderr);
    // grounding rows of all three splits, beside dataset.json so the image paths and the seed stay theirs
    const rows = ['train', 'validation', 'test'].flatMap((s) => readFileSync(join(data, `${s}.jsonl`), 'utf8').split('\n').filter((l) => l.includes('"category":"grounding"')));
    assert.ok(rows.length >= 30, `${rows.length} grounding rows`);
    writeFileSync(join(data, 'grounding.jsonl'), rows.join('\n') + '\n');
    const probe = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', SCRIPT, ...args], { encoding: 'utf8', env: { ...process.env, VLMKIT_THREADS: '1' } });

    const r = probe('--model', BUILTIN_MODEL_DIR, '--data', join(data, 'grounding.jsonl'), '--rows', '30', '--fit', '20', '--json');
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.scenes_checked, 30);
    assert.deepEqual([out.rows, out.fit, out.test], [30, 20, 10]);
    assert.deepEqual(Object.keys(out.probes).sort(), [...POSITIONS].sort());
    for (const p of POSITIONS) {
      assert.deepEqual(Object.keys(out.probes[p]).sort(), [...TARGETS].sort());
      for (const t of TARGETS) assert.ok(Number.isFinite(out.probes[p][t].r2) && out.probes[p][t].r2 <= 1, `${p} ${t}: ${JSON.stringify(out.probes[p][t])}`);
    }

    for (const w of ['tower', 'input'])
      for (const t of ['y0', 'x0']) {
        const a = out.axis_shares[w][t];
        assert.ok(a.share > 0 && a.share < 1 && a.part_std > 0 && a.total_std > a.part_std, `${w} ${t}: ${JSON.stringify(a)}`);
      }

    const aim = out.first_token_aim;
    assert.equal(aim.one + aim.several, 30, JSON.stringify(aim));
    assert.ok(aim.on_target_one <= aim.one && aim.on_target_several + aim.on_topmost_instead <= aim.several, JSON.stringify(aim));
    assert.ok(aim.uniform_guess_several > 0 && aim.uniform_guess_several <= aim.several / 2, JSON.stringify(aim));

    // another seed regenerates other scenes: one line naming the row and the dataset.json, and no stack
    const info = JSON.parse(readFileSync(join(data, 'dataset.json'), 'utf8'));
    writeFileSync(join(data, 'dataset.json'), JSON.stringify({ ...info, seed: 4 }));
    const bad = probe('--model', BUILTIN_MODEL_DIR, '--data', join(data, 'grounding.jsonl'), '--rows', '30', '--fit', '20');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^probe-grounding: .*grounding\.jsonl:\d+: the row's box .* regenerated from .*dataset\.json \(seed 4, size 128\)/);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    // rows of another generator
    writeFileSync(join(data, 'dataset.json'), JSON.stringify({ ...info, generator: 'charts' }));
    const other = probe('--model', BUILTIN_MODEL_DIR, '--data', join(data, 'grounding.jsonl'));
    assert.match(other.stderr, /^probe-grounding: .*generator is "charts", not "shapes"/);
  });
});
