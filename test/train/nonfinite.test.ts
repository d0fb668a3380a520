// A NaN or Inf loss or gradient norm stops the run with a clear error (or, with skipNonfinite, skips the step and
// counts it); an lr far too high stops it too; non-finite weights are never saved, neither in a checkpoint nor as the
// final adapter. --out on a file is a clear error. Pruning an old checkpoint never leaves a half-deleted checkpoint-N.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { VlmkitError } from '../../src/errors.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { listCheckpoints, pruneCheckpoints, removeStaleTemps } from '../../src/train/resume.js';
import { type SftRunIo, type SftRunOptions, type SftTrainer, runSft } from '../../src/train/sft.js';
import { TINY, writeSftData } from './fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-nonfinite-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = writeSftData(tmp, 4);

const base = (out: string): SftRunOptions => ({
  model: TINY, data: data.train, out, maxSteps: 4, batchSize: 2, lr: 5e-3, seed: 1, lora: { r: 2, loraAlpha: 4 },
});

/** The first trained tensor, its first value set to `v` (returns the value it had). */
function poison(t: SftTrainer, v: number): number {
  const d = [...t.params.values()][0]!.data as Float32Array;
  const was = d[0]!;
  d[0] = v;
  return was;
}

/** Stops a run that would go on past its steps (a check that fails instead of hanging). */
function guarded(io: SftRunIo = {}): SftRunIo {
  let n = 0;
  return { ...io, onStep: async (t, r) => {
    if (++n > 10) throw new Error('the run keeps stepping');
    await io.onStep?.(t, r);
  } };
}

const records = (out: string) => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

function assertFiniteFile(path: string): void {
  const f = SafetensorsFile.open(path);
  try {
    for (const n of f.names()) for (const x of f.read(n).data as Float32Array) assert.ok(Number.isFinite(x), `${path}: ${n} holds ${x}`);
  } finally {
    f.close();
  }
}

describe('non-finite training', () => {
  it('a NaN loss stops the run with a clear error; nothing is saved', async () => {
    const out = join(tmp, 'nan-stop');
    await assert.rejects(runSft(base(out), guarded({ onStep: (t) => { if (t.position.step === 1) poison(t, NaN); } })), (e: Error) => {
      assert.ok(e instanceof VlmkitError && e.code === 'E_NONFINITE', e.stack);
      assert.match(e.message, /^step 2: the loss is \S+ and the gradient norm NaN; stopped before updating .*--skip-nonfinite/);
      return true;
    });
    assert.ok(!existsSync(join(out, 'adapter_model.safetensors')));
    assert.deepEqual(records(out).filter((r) => r.type === 'train').map((r) => r.step), [1]);
  });

  it('--lr 1e30 stops the run instead of saving a NaN adapter', async () => {
    const out = join(tmp, 'huge-lr');
    await assert.rejects(runSft({ ...base(out), lr: 1e30, saveEvery: 1 }, guarded()), /step \d: .*(the loss is (NaN|Infinity)|made .* (NaN|Infinity))/);
    assert.ok(!existsSync(join(out, 'adapter_model.safetensors')));
    for (const c of readdirSync(out).filter((n) => n.startsWith('checkpoint-'))) assertFiniteFile(join(out, c, 'trainable.safetensors'));
  });

  it('skipNonfinite skips the step, counts it in the metrics and trains on', async () => {
    const out = join(tmp, 'nan-skip');
    let was = 0;
    const r = await runSft({ ...base(out), skipNonfinite: true }, guarded({
      onStep: (t, s) => {
        if (t.position.step === 1) was = poison(t, NaN);
        if (t.position.step === 2) {
          assert.ok(s.skipped);
          poison(t, was);
        }
      },
    }));
    assert.equal(r.steps, 4);
    assert.equal(r.skippedSteps, 1);
    const recs = records(out);
    assert.deepEqual(recs.filter((x) => x.type === 'train').map((x) => x.skipped ?? false), [false, true, false, false]);
    assert.equal(recs.find((x) => x.event === 'done')!.skipped_steps, 1);
    assertFiniteFile(join(out, 'adapter_model.safetensors'));
  });

  it('non-finite weights are never saved: not in a checkpoint, not as the final adapter', async () => {
    const ckOut = join(tmp, 'nan-checkpoint');
    await assert.rejects(runSft({ ...base(ckOut), saveEvery: 2, skipNonfinite: true }, guarded({ onStep: (t) => { if (t.position.step === 2) poison(t, Infinity); } })),
      /not saving checkpoint .*checkpoint-2: .* holds Infinity/);
    assert.ok(!existsSync(join(ckOut, 'checkpoint-2')));
    assert.deepEqual(readdirSync(ckOut).filter((n) => n.startsWith('.')), [], 'no temporary folder left');
    const finalOut = join(tmp, 'nan-final');
    await assert.rejects(runSft(base(finalOut), guarded({ onStep: (t) => { if (t.done) poison(t, NaN); } })), /not saving the adapter to .*: .* holds NaN/);
    assert.ok(!existsSync(join(finalOut, 'adapter_model.safetensors')));
    assert.ok(!existsSync(join(finalOut, 'adapter_config.json')));
  });

  it('--out on a file is a clear error', async () => {
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'x');
    await assert.rejects(runSft(base(file)), (e: Error) => e instanceof VlmkitError && /^--out .*a-file is a file, not a folder/.test(e.message));
    await assert.rejects(runSft(base(join(file, 'sub'))), (e: Error) => e instanceof VlmkitError && /^--out .*sub: cannot create the run folder \(ENOTDIR\)/.test(e.message));
  });

  it('--save-total-limit: a deletion killed halfway leaves no checkpoint-N folder, only a temporary', async () => {
    const out = join(tmp, 'pruned');
    await runSft({ ...base(out), maxSteps: 2, saveEvery: 1 }, guarded());
    assert.deepEqual(listCheckpoints(out).map((c) => c.step), [1, 2]);
    const removed: string[] = [];
    pruneCheckpoints(out, 1, (dir) => {
      removed.push(dir);
      rmSync(join(dir, 'optimizer.safetensors'));
      throw new Error('killed');
    });
    assert.equal(removed.length, 1, 'the old checkpoint goes through the remover');
    assert.ok(!existsSync(join(out, 'checkpoint-1')), 'no half-deleted checkpoint-1');
    assert.deepEqual(listCheckpoints(out).map((c) => c.step), [2]);
    assert.deepEqual(removeStaleTemps(out), [basename(removed[0]!)], 'the next start removes what is left');
    assert.ok(!existsSync(removed[0]!));
  });
});
