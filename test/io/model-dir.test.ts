// A model directory is read in one place (ModelDir): each JSON file is parsed once by one reader, and a malformed
// file is a one-line FileFormatError naming it, whichever loader reads it.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileFormatError } from '../../src/errors.js';
import { inspectModel, loadVlm } from '../../src/api.js';
import { ModelDir } from '../../src/io/model-dir.js';
import { TINY } from '../train/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-modeldir-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
function copy(): string {
  const d = join(tmp, `m${n++}`);
  cpSync(TINY, d, { recursive: true });
  return d;
}

function namesFile(file: string) {
  return (e: unknown) => {
    assert.ok(e instanceof FileFormatError, `expected a FileFormatError, got ${e}`);
    assert.ok(e.message.includes(file), `does not name ${file}: ${e.message}`);
    assert.ok(!e.message.includes('\n'), e.message);
    assert.match(e.message, /not valid JSON/);
    return true;
  };
}

describe('ModelDir', () => {
  for (const file of ['config.json', 'generation_config.json', 'processor_config.json', 'tokenizer_config.json', 'tokenizer.json']) {
    it(`a malformed ${file} is a FileFormatError naming it`, async () => {
      const d = copy();
      writeFileSync(join(d, file), '{"truncated": ');
      await assert.rejects(loadVlm(d), namesFile(join(d, file)));
    });
  }

  it('a malformed chat_template.json is a FileFormatError naming it (read when a prompt is first built)', async () => {
    const d = copy();
    rmSync(join(d, 'chat_template.jinja'));
    writeFileSync(join(d, 'chat_template.json'), '{"chat_template": ');
    const vlm = await loadVlm(d);
    try {
      await assert.rejects(vlm.encode('Hello'), namesFile(join(d, 'chat_template.json')));
    } finally {
      vlm.dispose();
    }
  });

  it('parses each file once: loadVlm on an inspected directory does not read config.json again', async () => {
    const d = copy();
    const md = ModelDir.of(d);
    assert.equal(md.json('config.json'), md.json('config.json'));
    assert.equal(md.json('preprocessor_config.json'), null);
    const info = inspectModel(d);
    writeFileSync(join(d, 'config.json'), 'not json any more'); // a second read would fail
    const vlm = await loadVlm(info);
    try {
      assert.equal(vlm.family, 'idefics3');
      assert.equal(vlm.config.modelType, info.config.modelType);
    } finally {
      vlm.dispose();
    }
  });
});
