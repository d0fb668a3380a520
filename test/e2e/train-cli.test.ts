// `vlmkit train sft` end to end on tiny-idefics3: a few steps on a small dataset lower the loss; the saved adapter
// reloads and gives the very logits of the trained model; the merged checkpoint gives base + adapter's logits;
// bad rows are one-line errors naming file:line (or skipped and counted); --json streams metrics; Ctrl-C writes a
// checkpoint and exits 130, --resume finishes the run; nothing half-written is left behind.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Tensor, noGrad, tidy } from '../../src/engine/index.js';
import { loadModel, type Idefics3Model } from '../../src/models/idefics3/model.js';
import { Processor } from '../../src/models/idefics3/processor.js';
import { loadAdapter, saveMergedCheckpoint } from '../../src/train/peft.js';
import { runSft } from '../../src/train/sft.js';
import { trainOptions } from '../../src/cli/train.js';
import { TINY, writeSftData } from '../train/fixtures.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'vlmkit.js');
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-train-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = writeSftData(tmp, 8);

interface Run { code: number | null; stdout: string; stderr: string }

function vlmkit(args: string[], onStdout?: (chunk: string, kill: (sig: NodeJS.Signals) => void) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, VLMKIT_CLI_SOURCE: '1', VLMKIT_DEBUG: '' } });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => {
      stdout += d;
      onStdout?.(String(d), (s) => p.kill(s));
    });
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    p.stdin.end();
  });
}

const jsonLines = (s: string) => s.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

function probeLogits(model: Idefics3Model, proc: Processor): Promise<Float32Array> {
  return (async () => {
    const enc = await proc.encode({ messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is in this image?' }] }], images: [join(tmp, 'wide_90x150.png')] });
    try {
      return noGrad(() => tidy(() => (model.forward({ inputIds: enc.inputIds, attentionMask: enc.attentionMask, pixelValues: enc.pixelValues, pixelAttentionMask: enc.pixelAttentionMask }) as Tensor).toFloat32Array()));
    } finally {
      enc.dispose();
    }
  })();
}

function maxRel(a: Float32Array, b: Float32Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i]! - b[i]!)); m = Math.max(m, Math.abs(b[i]!)); }
  return d / m;
}

describe('vlmkit train sft', () => {
  it('trains: the loss goes down, metrics are JSON lines, the adapter is a PEFT folder', async () => {
    const out = join(tmp, 'run1');
    const r = await vlmkit(['train', 'sft', '--model', TINY, '--data', data.train, '--val', data.train, '--out', out, '--max-steps', '10',
      '--batch-size', '8', '--lr', '3e-2', '--warmup-steps', '1', '--lora', 'r=8,alpha=16,targets=all-linear', '--json', '--seed', '1']);
    assert.equal(r.code, 0, r.stderr);
    const recs = jsonLines(r.stdout);
    const steps = recs.filter((x) => x.type === 'train');
    assert.equal(steps.length, 10);
    for (const k of ['step', 'loss', 'lr', 'grad_norm', 'tokens_per_s', 'samples_per_s']) assert.equal(typeof steps[0]![k], 'number', k);
    // step 1 sees the untrained model (B = 0) on the whole set; the final eval is on the same rows
    const first = steps[0]!.loss as number;
    const evalLoss = recs.find((x) => x.type === 'eval')!.eval_loss as number;
    assert.ok(evalLoss < first - 0.5, `loss ${first} -> ${evalLoss}`);
    assert.deepEqual(jsonLines(readFileSync(join(out, 'metrics.jsonl'), 'utf8')), recs);
    const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(cfg.r, 8);
    assert.equal(cfg.lora_alpha, 16);
    assert.ok(Array.isArray(cfg.target_modules) && cfg.target_modules.length > 7, 'all-linear is saved resolved');
    assert.deepEqual(readdirSync(out).filter((f) => f.startsWith('.')), [], 'no temporary files left');
  });

  it('the saved adapter reloads with the trained logits; the merged checkpoint gives base + adapter', async () => {
    const out = join(tmp, 'run2');
    const proc = Processor.fromDir(TINY);
    let trained: Float32Array | null = null;
    await runSft({ model: TINY, data: data.train, out, maxSteps: 4, batchSize: 4, lr: 2e-2, seed: 2, lora: { r: 4, loraAlpha: 8, loraDropout: 0.1 } }, {
      onStep: async (t) => {
        if (!t.done) return;
        t.lora!.eval();
        trained = await probeLogits(t.model as Idefics3Model, proc); // (runSft trains the tiny Idefics3 here)
        t.lora!.train(true);
      },
    });
    const base = loadModel(TINY);
    try {
      const baseLogits = await probeLogits(base, proc);
      const lora = loadAdapter(base, out);
      const reloaded = await probeLogits(base, proc);
      assert.ok(maxRel(reloaded, trained!) === 0, `reloaded adapter logits differ by ${maxRel(reloaded, trained!)}`);
      assert.ok(maxRel(reloaded, baseLogits) > 1e-3, 'the adapter changes the logits');
      const merged = join(tmp, 'merged');
      saveMergedCheckpoint(base, lora, { sourceDir: TINY, outDir: merged });
      const m = loadModel(merged);
      try {
        const d = maxRel(await probeLogits(m, proc), reloaded);
        assert.ok(d <= 1e-4, `merged logits differ by ${d}`);
      } finally {
        m.dispose();
      }
    } finally {
      base.dispose();
    }
  });

  it('--full --freeze-vision trains everything but the vision tower and writes a model folder', async () => {
    const out = join(tmp, 'full');
    const r = await vlmkit(['train', 'sft', '--model', TINY, '--data', data.train, '--out', out, '--max-steps', '2', '--batch-size', '4', '--full', '--freeze-vision', '--lr', '1e-3']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /model saved to .*full[/\\]model \(2 steps/);
    const base = loadModel(TINY, { dtype: 'f32' }), tuned = loadModel(join(out, 'model'), { dtype: 'f32' });
    try {
      const bp = base.parameters(), tp = tuned.parameters();
      let visionSame = true, textChanged = false;
      for (const [n, t] of tp) {
        const same = maxRel(t.toFloat32Array(), bp.get(n)!.toFloat32Array()) === 0;
        if (n.includes('vision_model.')) visionSame &&= same;
        else if (n.includes('q_proj')) textChanged ||= !same;
      }
      assert.ok(visionSame, 'the vision tower stays as it was');
      assert.ok(textChanged, 'the text model trained');
      assert.ok(existsSync(join(out, 'model', 'tokenizer.json')));
    } finally {
      base.dispose();
      tuned.dispose();
    }
  });

  it('a bad row is a one-line error naming file and line; --skip-bad-rows skips and counts it', async () => {
    const bad = join(tmp, 'bad.jsonl');
    writeFileSync(bad, readFileSync(data.train, 'utf8') + JSON.stringify({ messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'x' }] }, { role: 'assistant', content: 'y' }], images: ['missing.png'] }) + '\n');
    const r = await vlmkit(['train', 'sft', '--model', TINY, '--data', bad, '--out', join(tmp, 'run3'), '--max-steps', '1']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^vlmkit: .*bad\.jsonl:9: .*missing\.png/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.ok(!existsSync(join(tmp, 'run3', 'adapter_model.safetensors')));
    const s = await vlmkit(['train', 'sft', '--model', TINY, '--data', bad, '--out', join(tmp, 'run3'), '--max-steps', '1', '--skip-bad-rows', '--json']);
    assert.equal(s.code, 0, s.stderr);
    const start = jsonLines(s.stdout).find((x) => x.event === 'start')!;
    assert.deepEqual((start.train as Record<string, number>).skipped, 1);
    const u = await vlmkit(['train', 'sft', '--model', TINY, '--data', data.train, '--out', join(tmp, 'run3'), '--lora', 'r=x']);
    assert.equal(u.code, 1);
    assert.match(u.stderr, /^vlmkit: --lora "r=x": r must be a number/);
  });

  it('--out on a file is a one-line error; --skip-nonfinite reaches the run options', async () => {
    const file = join(tmp, 'not-a-folder');
    writeFileSync(file, 'x');
    const r = await vlmkit(['train', 'sft', '--model', TINY, '--data', data.train, '--out', file, '--max-steps', '1']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^vlmkit: --out .*not-a-folder is a file, not a folder/);
    assert.equal(trainOptions(['--model', TINY, '--data', data.train, '--out', file, '--skip-nonfinite']).opts.skipNonfinite, true);
    assert.equal(trainOptions(['--model', TINY, '--data', data.train, '--out', file]).opts.skipNonfinite, false);
  });

  it('Ctrl-C writes a checkpoint and exits 130; --resume finishes the same run', async () => {
    const out = join(tmp, 'run4');
    const args = ['train', 'sft', '--model', TINY, '--data', data.train, '--out', out, '--max-steps', '12', '--batch-size', '2', '--json', '--seed', '5'];
    let sent = false;
    const r = await vlmkit(args, (chunk, kill) => {
      if (!sent && chunk.includes('"type":"train"')) { sent = true; kill('SIGINT'); }
    });
    assert.equal(r.code, 130, r.stderr);
    const recs = jsonLines(r.stdout);
    const stopped = recs.find((x) => x.event === 'interrupted')!;
    assert.ok(stopped, r.stdout);
    const step = stopped.step as number;
    assert.ok(step >= 1 && step < 12);
    assert.ok(existsSync(join(out, `checkpoint-${step}`, 'trainer_state.json')));
    assert.ok(!existsSync(join(out, 'adapter_model.safetensors')), 'no final adapter after Ctrl-C');
    assert.deepEqual(readdirSync(out).filter((f) => f.startsWith('.')), []);
    const again = await vlmkit([...args, '--resume']);
    assert.equal(again.code, 0, again.stderr);
    const steps = jsonLines(again.stdout).filter((x) => x.type === 'train').map((x) => x.step);
    assert.deepEqual(steps, Array.from({ length: 12 - step }, (_, i) => step + 1 + i));
    assert.ok(existsSync(join(out, 'adapter_model.safetensors')));
  });
});
