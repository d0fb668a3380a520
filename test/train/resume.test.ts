// Resume: 6 steps straight and 3 steps + interruption (checkpoint) + resume + 3 steps give the same adapter and
// the same optimizer state, bit for bit (LoRA with dropout, whose masks must repeat; batches
// that cross epoch boundaries with gradient accumulation). Checkpoints appear whole or not at all.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSft, type SftRunOptions } from '../../src/train/sft.js';
import { listCheckpoints, readTrainerState, removeStaleTemps } from '../../src/train/resume.js';
import { TINY, writeSftData } from './fixtures.js';

// Runs at the default thread count: every kernel sums in a fixed order (test/engine/determinism.test.ts).

const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-resume-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = writeSftData(tmp, 5);

const base = (out: string): SftRunOptions => ({
  model: TINY, data: data.train, out, maxSteps: 6, batchSize: 2, gradAccum: 2, lr: 5e-3, warmupSteps: 2,
  schedule: 'cosine', seed: 3, weightDecay: 0.01, lora: { r: 4, loraAlpha: 8, loraDropout: 0.1 }, groupByLength: true,
});

describe('resume', () => {
  it('6 steps straight == 3 steps + resume + 3 steps, bit for bit', async () => {
    const a = join(tmp, 'a'), b = join(tmp, 'b');
    const ra = await runSft(base(a));
    assert.equal(ra.steps, 6);
    assert.ok(!ra.interrupted);
    const stop = { requested: false };
    const rb1 = await runSft({ ...base(b), saveEvery: 0 }, { stop, onStep: (t) => { if (t.position.step === 3) stop.requested = true; } });
    assert.equal(rb1.interrupted, true);
    assert.equal(rb1.steps, 3);
    assert.ok(rb1.checkpoint && rb1.checkpoint.endsWith('checkpoint-3'));
    assert.ok(!existsSync(join(b, 'adapter_model.safetensors')), 'no final adapter after an interruption');
    const st = readTrainerState(rb1.checkpoint!);
    assert.equal(st.position.step, 3);
    // the checkpoint is a PEFT adapter too
    assert.ok(existsSync(join(rb1.checkpoint!, 'adapter_config.json')));
    const rb2 = await runSft({ ...base(b), resume: true });
    assert.equal(rb2.steps, 6);
    assert.deepEqual(rb2.losses, ra.losses.slice(3), 'the resumed steps see the same losses');
    assert.deepEqual(rb1.losses, ra.losses.slice(0, 3));
    const wa = readFileSync(join(a, 'adapter_model.safetensors'));
    const wb = readFileSync(join(b, 'adapter_model.safetensors'));
    assert.ok(wa.equals(wb), 'adapters differ');
    assert.deepEqual(JSON.parse(readFileSync(join(a, 'adapter_config.json'), 'utf8')), JSON.parse(readFileSync(join(b, 'adapter_config.json'), 'utf8')));
    // metrics.jsonl continues across the resume
    const recs = readFileSync(join(b, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(recs.filter((r) => r.type === 'train').map((r) => r.step), [1, 2, 3, 4, 5, 6]);
    assert.ok(recs.some((r) => r.event === 'interrupted') && recs.some((r) => r.event === 'resume'));
  });

  it('periodic checkpoints; resuming from an earlier one replays to the same result', async () => {
    const c = join(tmp, 'c');
    await runSft({ ...base(c), saveEvery: 2, saveTotalLimit: 2 });
    assert.deepEqual(listCheckpoints(c).map((x) => x.step), [4, 6]);
    const final = readFileSync(join(c, 'adapter_model.safetensors'));
    rmSync(join(c, 'checkpoint-6'), { recursive: true });
    rmSync(join(c, 'adapter_model.safetensors'));
    const r = await runSft({ ...base(c), resume: join(c, 'checkpoint-4') });
    assert.equal(r.losses.length, 2);
    assert.ok(readFileSync(join(c, 'adapter_model.safetensors')).equals(final));
  });

  it('refuses a checkpoint of another run and a run folder without checkpoints', async () => {
    const d = join(tmp, 'd');
    await runSft({ ...base(d), maxSteps: 1, saveEvery: 1 });
    await assert.rejects(runSft({ ...base(d), seed: 4, resume: true }), /another run .*seed: 3 then, 4 now/);
    await assert.rejects(runSft({ ...base(join(tmp, 'e')), resume: true }), /no checkpoint-N folder/);
  });

  it('leftovers of a killed run are removed on the next start', () => {
    const f = join(tmp, 'f');
    mkdirSync(join(f, '.checkpoint-2.tmp-123-abc12'), { recursive: true });
    writeFileSync(join(f, '.adapter_model.safetensors.tmp-123-zz9'), 'half');
    assert.equal(removeStaleTemps(f).length, 2);
    assert.deepEqual(readdirSync(f), []);
  });
});
