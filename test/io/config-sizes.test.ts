// config.json sizes are checked before anything is allocated from them: absurd values fail at once with the field
// named, and every size is checked against the tensors present (layer counts from the names, then shapes) before
// a single tensor is read. A config asking for 100,000,000 layers used to run out of memory after 27 s.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileFormatError } from '../../src/errors.js';
import { idefics3ConfigFromJson, loadModel } from '../../src/models/idefics3/index.js';

const TINY = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference', 'tiny-idefics3');
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-cfg-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const tinyConfig = (): Json => JSON.parse(readFileSync(join(TINY, 'config.json'), 'utf8')) as Json;

/** The tiny checkpoint's weights under an edited config.json. */
function dirWith(name: string, edit: (c: Json) => void): string {
  const d = join(tmp, name);
  mkdirSync(d);
  const c = tinyConfig();
  edit(c);
  writeFileSync(join(d, 'config.json'), JSON.stringify(c));
  copyFileSync(join(TINY, 'model.safetensors'), join(d, 'model.safetensors'));
  return d;
}

/** loadModel(d) fails fast with a one-line FileFormatError naming config.json and matching every pattern. */
function refuses(d: string, ...res: RegExp[]): void {
  const t0 = performance.now();
  assert.throws(() => loadModel(d), (e: unknown) => {
    assert.ok(e instanceof FileFormatError, `expected a FileFormatError, got ${e}`);
    assert.ok(e.message.includes(join(d, 'config.json')), `does not name config.json: ${e.message}`);
    assert.ok(!e.message.includes('\n'), e.message);
    for (const re of res) assert.match(e.message, re);
    return true;
  });
  const ms = performance.now() - t0;
  assert.ok(Number.isFinite(ms) && ms < 2000, `took ${ms} ms`);
}

describe('config.json sizes against the weights', () => {
  it('refuses 100,000,000 layers at once, naming the field', () => {
    refuses(dirWith('huge-layers', (c) => (c.text_config.num_hidden_layers = 100_000_000)), /text_config: "num_hidden_layers" must be an integer from 0 to 4096, got 100000000/);
  });

  it('refuses a layer count the checkpoint does not hold, before reading any tensor', () => {
    refuses(dirWith('more-layers', (c) => (c.text_config.num_hidden_layers = 3)),
      /text_config\.num_hidden_layers is 3 but the checkpoint .* holds 2 \(tensors "text_model\.layers\.0\.\*" to "text_model\.layers\.1\.\*"\)/);
    refuses(dirWith('fewer-layers', (c) => (c.text_config.num_hidden_layers = 1)), /text_config\.num_hidden_layers is 1 but .* holds 2/);
    refuses(dirWith('vision-layers', (c) => (c.vision_config.num_hidden_layers = 4000)), /vision_config\.num_hidden_layers is 4000 but .* holds 2/);
  });

  it('names config.json, the field and the tensor when vocab or hidden sizes do not match the shapes', () => {
    refuses(dirWith('vocab', (c) => (c.text_config.vocab_size = 449)),
      /tensor "model\.text_model\.embed_tokens\.weight" in .*model\.safetensors has shape \[448, 64\], expected \[449, 64\] from .*config\.json \(text_config vocab_size x hidden_size\)/);
    // large but under the limits: refused from the shapes, nothing allocated
    refuses(dirWith('hidden', (c) => Object.assign(c.text_config, { hidden_size: 65536, intermediate_size: 1 << 20 })), /has shape \[.*\], expected \[.*65536.*\] from/);
    refuses(dirWith('mlp', (c) => (c.vision_config.intermediate_size = 1 << 20)), /fc1\.weight" .* expected \[1048576, 32\] .*vision_config hidden_size, intermediate_size/);
  });

  it('refuses absurd sizes in config.json itself, naming the field', () => {
    const cfg = (edit: (c: Json) => void) => {
      const c = tinyConfig();
      edit(c);
      return () => idefics3ConfigFromJson(c, '/m/config.json');
    };
    const cases: [(c: Json) => void, RegExp][] = [
      [(c) => (c.text_config.hidden_size = 1e9), /\/m\/config\.json text_config: "hidden_size" must be an integer from 1 to 65536, got 1000000000; fix config\.json/],
      [(c) => (c.text_config.vocab_size = 2 ** 40), /"vocab_size" must be an integer from 1 to 16777216/],
      [(c) => (c.vision_config.image_size = 1e7), /vision_config: "image_size" must be/],
      [(c) => (c.vision_config.num_hidden_layers = -1), /"num_hidden_layers" must be an integer from 0 to 4096, got -1/],
      [(c) => (c.text_config.max_position_embeddings = 1e12), /"max_position_embeddings" must be/],
      [(c) => (c.text_config.num_attention_heads = 1e6), /"num_attention_heads" must be/],
      [(c) => (c.scale_factor = 1e6), /"scale_factor" must be/],
    ];
    for (const [edit, re] of cases) assert.throws(cfg(edit), (e: unknown) => e instanceof FileFormatError && re.test(e.message));
    // the released sizes stay accepted (Idefics3-8B)
    assert.equal(idefics3ConfigFromJson({ ...tinyConfig(), text_config: { hidden_size: 4096, intermediate_size: 14336, vocab_size: 128259, num_hidden_layers: 32, max_position_embeddings: 131072 } }).text.vocabSize, 128259);
  });
});
