// The built-in model's vision-tower recipe (recipes/builtin/vision.json, scripts/pretrain-vision.ts) reproduces: the
// same seed gives the same pictures and the same loss curve, to the printed digits, on any machine. This runs the
// recipe unchanged for its first steps, twice, and compares them with the losses recorded when it was committed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Losses of the first 3 steps, recorded from this same command when the recipe was committed. */
const RECORDED = ['7.0752', '7.0799', '7.0355'];

function firstSteps(out: string): string[] {
  const stdout = execFileSync(process.execPath, ['--import', 'tsx', 'scripts/pretrain-vision.ts', '--recipe', 'recipes/builtin/vision.json', '--out', out, '--stop-after', '3', '--log-every', '1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const rows = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { step: number; loss?: number; eval_loss?: number });
  // the tower is written at the stop, with its held-out evaluation
  assert.ok(existsSync(join(out, 'model.safetensors')), 'the tower is saved');
  assert.equal((JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { model_type: string }).model_type, 'siglip_vision_model', 'as a SigLIP vision checkpoint');
  assert.ok(rows.some((r) => Number.isFinite(r.eval_loss)), 'a held-out evaluation is printed');
  return rows.filter((r) => r.loss !== undefined).map((r) => r.loss!.toFixed(4));
}

test('the vision-tower recipe: the same seed gives the recorded loss curve, twice', () => {
  const root = mkdtempSync(join(tmpdir(), 'vlmkit-vision-recipe-'));
  try {
    const a = firstSteps(join(root, 'a'));
    const b = firstSteps(join(root, 'b'));
    assert.deepEqual(a, b);
    assert.deepEqual(a, RECORDED);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
