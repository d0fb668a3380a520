// A resume trusts nothing in the checkpoint: a damaged trainer_state.json (a string or negative step, no position,
// a position that does not fit the step), an optimizer file without its step counts, NaN weights, a checkpoint of
// other hyper-parameters or other data, or an incomplete checkpoint folder is a one-line error naming the file,
// before any step runs; a newer incomplete folder is passed over when resuming the newest.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { type SafetensorsEntry, writeSafetensors } from '../../src/io/safetensors-write.js';
import { VlmkitError } from '../../src/errors.js';
import { runSft, type SftRunOptions } from '../../src/train/sft.js';
import { TINY, writeSftData } from './fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-resume-guard-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = writeSftData(tmp, 5);
const SRC = join(tmp, 'src');

const base = (out: string): SftRunOptions => ({
  model: TINY, data: data.train, out, maxSteps: 4, batchSize: 2, lr: 5e-3, seed: 3, saveEvery: 2, lora: { r: 2, loraAlpha: 4 },
});

// a resume that got past the checks would run steps: none may run, and a looping one must not hang the suite
function resume(out: string, extra: Partial<SftRunOptions> = {}): Promise<unknown> {
  let steps = 0;
  return runSft({ ...base(out), resume: true, ...extra }, {
    onStep: () => {
      if (++steps > 8) throw new Error('the resumed run keeps stepping');
    },
  });
}

/** A copy of the source run's checkpoint-2 in a fresh run folder, changed by `edit`; returns the folder. */
function tampered(name: string, edit: (ck: string) => void): string {
  const out = join(tmp, name);
  cpSync(join(SRC, 'checkpoint-2'), join(out, 'checkpoint-2'), { recursive: true });
  edit(join(out, 'checkpoint-2'));
  return out;
}

function editState(ck: string, f: (s: Record<string, any>) => void): void {
  const p = join(ck, 'trainer_state.json');
  const s = JSON.parse(readFileSync(p, 'utf8'));
  f(s);
  writeFileSync(p, JSON.stringify(s));
}

/** Rewrites a safetensors file with its tensors (changed by `map`) and the given metadata. */
function rewrite(path: string, metadata: Record<string, string>, map: (name: string, d: Float32Array) => void = () => undefined): void {
  const f = SafetensorsFile.open(path);
  const entries: SafetensorsEntry[] = f.names().map((n) => {
    const r = f.read(n);
    const d = new Float32Array(r.data as Float32Array);
    map(n, d);
    return { name: n, dtype: 'F32', shape: r.shape, data: d };
  });
  f.close();
  writeSafetensors(path, entries, metadata);
}

async function refused(out: string, re: RegExp, extra: Partial<SftRunOptions> = {}): Promise<void> {
  await assert.rejects(resume(out, extra), (e: Error) => {
    assert.ok(e instanceof VlmkitError, `not a VlmkitError: ${e.stack}`);
    assert.match(e.message, re);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
  assert.ok(!existsSync(join(out, 'adapter_model.safetensors')), 'no adapter after a refused resume');
  const metrics = join(out, 'metrics.jsonl');
  if (existsSync(metrics)) assert.doesNotMatch(readFileSync(metrics, 'utf8'), /"type":"train"/, 'no step ran');
}

describe('resume validates the checkpoint', () => {
  before(async () => {
    const r = await runSft(base(SRC));
    assert.equal(r.steps, 4);
  });

  it('trainer_state.json: a string step, a negative step, no position, a step past the end', async () => {
    await refused(tampered('string-step', (c) => editState(c, (s) => (s.position.step = '2'))), /trainer_state\.json: position\.step must be an integer >= 0, got "2"/);
    await refused(tampered('negative-step', (c) => editState(c, (s) => (s.position.step = -1))), /trainer_state\.json: position\.step must be an integer >= 0, got -1/);
    await refused(tampered('no-position', (c) => editState(c, (s) => delete s.position)), /trainer_state\.json: "position" must be an object/);
    await refused(tampered('past-end', (c) => editState(c, (s) => (s.position.step = 9))), /trainer_state\.json: position\.step 9 is past totalSteps 4/);
    await refused(tampered('nan-elapsed', (c) => editState(c, (s) => (s.position.elapsed = 'NaN'))), /trainer_state\.json: position\.elapsed must be/);
  });

  it('a position that is not where its step stands', async () => {
    await refused(tampered('bad-position', (c) => editState(c, (s) => (s.position.batchInEpoch = 0))), /trainer_state\.json: position \(epoch 0, batch 0\) is not where step 2 of this run stands \(epoch 0, batch 2\)/);
    await refused(tampered('bad-epoch', (c) => editState(c, (s) => (s.position.epoch = 1))), /trainer_state\.json: position .* is not where step 2/);
  });

  it('optimizer.safetensors without its step counts, or with counts past the step', async () => {
    await refused(tampered('no-steps', (c) => rewrite(join(c, 'optimizer.safetensors'), { format: 'vlmkit' })), /optimizer\.safetensors: has no "steps" metadata/);
    await refused(tampered('big-steps', (c) => {
      const p = join(c, 'optimizer.safetensors');
      const f = SafetensorsFile.open(p);
      const steps = JSON.parse(f.metadata.steps!) as Record<string, string>;
      f.close();
      for (const k of Object.keys(steps)) steps[k] = '7';
      rewrite(p, { format: 'vlmkit', steps: JSON.stringify(steps) });
    }), /optimizer\.safetensors: the step count of .* must be an integer in \[1, 2\]/);
    await refused(tampered('nan-moment', (c) => {
      const p = join(c, 'optimizer.safetensors');
      const meta = SafetensorsFile.open(p);
      const steps = meta.metadata.steps!;
      meta.close();
      rewrite(p, { format: 'vlmkit', steps }, (n, d) => { if (n.startsWith('exp_avg.')) d[0] = NaN; });
    }), /optimizer\.safetensors: exp_avg\..* holds NaN/);
  });

  it('NaN in the trained weights', async () => {
    await refused(tampered('nan-weights', (c) => rewrite(join(c, 'trainable.safetensors'), { format: 'vlmkit' }, (_n, d) => (d[0] = Infinity))), /trainable\.safetensors: tensor .* holds Infinity/);
  });

  it('a checkpoint of other hyper-parameters or other data', async () => {
    await refused(tampered('other-lr', () => undefined), /another run \(lr: 0\.005 then, 0\.01 now\)/, { lr: 1e-2 });
    await refused(tampered('other-steps', () => undefined), /another run \(totalSteps: 4 then, 6 now\)/, { maxSteps: 6 });
    const fewer = join(tmp, 'fewer.jsonl');
    writeFileSync(fewer, readFileSync(data.train, 'utf8').trim().split('\n').slice(0, 4).join('\n') + '\n');
    await refused(tampered('other-data', () => undefined), /another run \(data: \{"hash":"[0-9a-f]+","rows":5\} then, \{"hash":"[0-9a-f]+","rows":4\} now\)/, { data: fewer });
  });

  it('an incomplete checkpoint is refused by name and passed over as the newest', async () => {
    const out = join(tmp, 'incomplete');
    cpSync(SRC, out, { recursive: true });
    rmSync(join(out, 'adapter_model.safetensors'));
    rmSync(join(out, 'checkpoint-4', 'optimizer.safetensors'));
    await assert.rejects(resume(out, { resume: join(out, 'checkpoint-4') }), /--resume: .*checkpoint-4 is an incomplete checkpoint \(no optimizer\.safetensors\)/);
    let said = '';
    const r = await runSft({ ...base(out), resume: true }, { stderr: { write: (s: string) => (said += s) } });
    assert.match(said, /ignoring .*checkpoint-4: incomplete \(no optimizer\.safetensors\)/);
    assert.match(said, /resumed from .*checkpoint-2 at step 2/);
    assert.equal(r.losses.length, 2);
    assert.ok(readFileSync(join(out, 'adapter_model.safetensors')).equals(readFileSync(join(SRC, 'adapter_model.safetensors'))), 'the resumed run ends where the straight one did');
    const only = join(tmp, 'only-incomplete');
    cpSync(join(SRC, 'checkpoint-2'), join(only, 'checkpoint-2'), { recursive: true });
    rmSync(join(only, 'checkpoint-2', 'trainable.safetensors'));
    await assert.rejects(resume(only), /--resume: .* has no checkpoint-N folder to resume from \(.*checkpoint-2 incomplete\)/);
  });
});
