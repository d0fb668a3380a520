// The parity tool over every reference case in the fixtures: the cases it supports (single image, batch, no
// split, text only, vision/connector, whole conversations) pass every check within the README's tolerances; the
// others (adapters, training, video prompts) are reported without a failure. A case it has never seen (an
// altered copy) is judged by its contents: a wrong expectation makes it fail with exit code 1.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/parity/main.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const REF = join(ROOT, 'test', 'fixtures', 'reference');
const CASES = join(REF, 'cases');

const KEYS = ['case', 'input_ids_equal', 'pixel_values_max_abs', 'pixel_values_mean_abs', 'logits_rel_err', 'generate_equal', 'ok'];

async function parity(args: string[]): Promise<{ code: number; out: Record<string, unknown> | null; lines: string[]; err: string }> {
  const lines: string[] = [];
  let err = '';
  const code = await main(args, (s) => lines.push(s), (s) => (err += s + '\n'));
  return { code, out: lines.length ? (JSON.parse(lines[0]!) as Record<string, unknown>) : null, lines, err };
}

const modelFor = (name: string) => join(REF, name.startsWith('smolvlm') ? 'tiny-smolvlm' : 'tiny-idefics3');
const cases = readdirSync(CASES).filter((f) => f.endsWith('.safetensors') && /^(idefics3|smolvlm)_/.test(f)).sort();
/** the cases the issue requires to pass fully */
const REQUIRED = /_(single_|batch_leftpad|nosplit_|textonly|vision_connector)/;

describe('parity tool on every reference case', () => {
  for (const f of cases) {
    const name = f.replace('.safetensors', '');
    it(name, async () => {
      const r = await parity([join(CASES, f), '--model', modelFor(name)]);
      assert.equal(r.lines.length, 1, 'one JSON line');
      const o = r.out!;
      for (const k of KEYS) assert.ok(k in o, `field ${k}`);
      assert.equal(o.case, name);
      if (REQUIRED.test(name)) {
        assert.equal(o.ok, true, JSON.stringify(o));
        assert.equal(r.code, 0);
        if (!name.endsWith('vision_connector')) {
          assert.equal(o.input_ids_equal, true);
          assert.ok((o.logits_rel_err as number) <= 1e-4);
        } else {
          assert.ok((o.vision_rel_err as number) <= 1e-4 && (o.connector_rel_err as number) <= 1e-4);
        }
        assert.ok((o.pixel_values_max_abs ?? 0) as number <= 0.02);
        if (/single_(wide|big)|batch_leftpad/.test(name)) assert.equal(o.generate_equal, true);
        else assert.equal(o.generate_equal, null);
      } else {
        assert.notEqual(o.ok, false, JSON.stringify(o));
        assert.equal(r.code, 0);
      }
    });
  }
});

describe('parity tool on unseen cases and bad input', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-parity-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const dir = join(tmp, 'cases');
  mkdirSync(dir);

  it('a renamed copy of a case passes (nothing depends on the name); images found via --images', async () => {
    copyFileSync(join(CASES, 'idefics3_single_tall_200x70.safetensors'), join(dir, 'mine.safetensors'));
    copyFileSync(join(CASES, 'idefics3_single_tall_200x70.json'), join(dir, 'mine.json'));
    const r = await parity([join(dir, 'mine.safetensors'), '--model', join(REF, 'tiny-idefics3'), '--images', join(REF, 'images')]);
    assert.equal(r.code, 0, JSON.stringify(r.out));
    assert.equal(r.out!.ok, true);
  });

  it('a case whose prompt does not give its input_ids fails with exit 1', async () => {
    copyFileSync(join(CASES, 'smolvlm_textonly.safetensors'), join(dir, 'wrong.safetensors'));
    const meta = JSON.parse(readFileSync(join(CASES, 'smolvlm_textonly.json'), 'utf8'));
    meta.prompt = meta.prompt.replace('Say hello.', 'Say goodbye.');
    writeFileSync(join(dir, 'wrong.json'), JSON.stringify(meta));
    const r = await parity([join(dir, 'wrong.safetensors'), '--model', join(REF, 'tiny-smolvlm'), '--no-model']);
    assert.equal(r.code, 1);
    assert.equal(r.out!.ok, false);
    assert.equal(r.out!.input_ids_equal, false);
    assert.ok((r.out!.failures as string[]).some((s) => s.includes('input_ids')));
  });

  it('logits from another model fail the logits check', async () => {
    const r = await parity([join(CASES, 'idefics3_textonly.safetensors'), '--model', join(REF, 'tiny-smolvlm')]);
    assert.equal(r.code, 1);
    assert.ok((r.out!.logits_rel_err as number) > 1e-4);
  });

  it('missing arguments and files are one-line errors', async () => {
    let r = await parity([join(CASES, 'idefics3_textonly.safetensors')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /--model/);
    r = await parity([join(dir, 'absent.safetensors'), '--model', join(REF, 'tiny-smolvlm')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /does not exist/);
  });

  it('--adapter applies a PEFT LoRA adapter (idefics3_lora_logits)', async () => {
    const r = await parity([join(CASES, 'idefics3_lora_logits.safetensors'), '--model', join(REF, 'tiny-idefics3'), '--adapter', join(REF, 'tiny-idefics3-lora')]);
    assert.equal(r.code, 0, JSON.stringify(r.out));
    assert.equal(r.out!.ok, true);
    assert.ok((r.out!.logits_rel_err as number) <= 1e-4);
    const bad = await parity([join(CASES, 'idefics3_lora_logits.safetensors'), '--model', join(REF, 'tiny-idefics3'), '--adapter', join(REF, 'tiny-idefics3')]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /not a PEFT adapter directory/);
  });

  it('npm run -s parity prints one JSON line and exits 0', () => {
    const p = spawnSync('npm', ['run', '-s', 'parity', '--', join(CASES, 'smolvlm_nosplit_big_300x410.safetensors'), '--model', join(REF, 'tiny-smolvlm')], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(p.status, 0, p.stderr);
    const lines = p.stdout.trim().split('\n');
    assert.equal(lines.length, 1, p.stdout);
    assert.equal(JSON.parse(lines[0]!).ok, true);
  });
});
