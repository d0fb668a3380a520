// generation_config.json: every field vlmkit reads is checked (type and range) when the model loads, and a bad one
// is a one-line error naming the file, the field and the fix; before, a negative max_new_tokens failed later
// without naming the file and a non-numeric temperature was silently ignored.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileFormatError } from '../../src/errors.js';
import { loadGenerationConfig } from '../../src/generate/stopping.js';
import { loadVlm } from '../../src/api.js';

const TINY = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference', 'tiny-smolvlm');
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-gencfg-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** A directory with just these two files (config.json's ids are the fallback). */
function dirWith(gen: Record<string, unknown> | null, config: Record<string, unknown> = { model_type: 'smolvlm' }): string {
  const d = join(tmp, `m${n++}`);
  mkdirSync(d);
  if (gen) writeFileSync(join(d, 'generation_config.json'), JSON.stringify(gen));
  writeFileSync(join(d, 'config.json'), JSON.stringify(config));
  return d;
}

function refuses(fn: () => unknown, file: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FileFormatError, `expected a FileFormatError, got ${e}`);
    assert.ok(e.message.includes(file), `does not name ${file}: ${e.message}`);
    assert.ok(!e.message.includes('\n'), e.message);
    assert.match(e.message, re);
    return true;
  });
}

describe('generation_config.json', () => {
  it('reads every field, null as unset', () => {
    const g = loadGenerationConfig(dirWith({
      max_new_tokens: 20, do_sample: true, temperature: 0.7, top_k: 40, top_p: 0.9, repetition_penalty: 1.1,
      eos_token_id: [3, 4], bos_token_id: 1, pad_token_id: null,
    }, { pad_token_id: 2 }));
    assert.deepEqual(g, {
      eosTokenIds: [3, 4], bosTokenId: 1, padTokenId: 2, maxNewTokens: 20, doSample: true, temperature: 0.7,
      topK: 40, topP: 0.9, repetitionPenalty: 1.1,
    });
    const none = loadGenerationConfig(dirWith(null, { text_config: { eos_token_id: 7 } }));
    assert.deepEqual(none.eosTokenIds, [7]);
    assert.equal(none.maxNewTokens, undefined);
  });

  it('refuses a wrong type or range, naming the file and the field', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ max_new_tokens: -5 }, /"max_new_tokens" must be an integer >= 1, got -5; fix or remove it/],
      [{ max_new_tokens: 2.5 }, /"max_new_tokens" must be an integer >= 1/],
      [{ temperature: 'hot' }, /"temperature" must be a number >= 0, got "hot"/],
      [{ temperature: -1 }, /"temperature" must be a number >= 0/],
      [{ do_sample: 'yes' }, /"do_sample" must be true or false/],
      [{ do_sample: true, temperature: 0 }, /"temperature" is 0 with "do_sample" true/],
      [{ top_k: 1.5 }, /"top_k" must be an integer >= 0/],
      [{ top_p: 0 }, /"top_p" must be a number in \(0, 1\]/],
      [{ top_p: 1.5 }, /"top_p" must be a number in \(0, 1\]/],
      [{ repetition_penalty: 0 }, /"repetition_penalty" must be a number > 0/],
      [{ repetition_penalty: '1.2' }, /"repetition_penalty" must be a number > 0/],
      [{ eos_token_id: '3' }, /"eos_token_id" must be a token id/],
      [{ eos_token_id: [3, 'x'] }, /"eos_token_id" must be a token id/],
      [{ bos_token_id: -2 }, /"bos_token_id" must be an integer >= 0/],
      [{ pad_token_id: 1.5 }, /"pad_token_id" must be an integer >= -1/],
    ];
    for (const [gen, re] of bad) {
      const d = dirWith(gen);
      refuses(() => loadGenerationConfig(d), join(d, 'generation_config.json'), re);
    }
    // the fallback ids in config.json name config.json
    const d = dirWith({}, { text_config: { eos_token_id: [1.5] } });
    refuses(() => loadGenerationConfig(d), join(d, 'config.json'), /"text_config\.eos_token_id" must be a token id/);
  });

  it('loading a model with a negative max_new_tokens names generation_config.json', async () => {
    const d = join(tmp, 'model');
    cpSync(TINY, d, { recursive: true });
    writeFileSync(join(d, 'generation_config.json'), JSON.stringify({ eos_token_id: 3, max_new_tokens: -1 }));
    await assert.rejects(loadVlm(d), (e: unknown) => e instanceof FileFormatError &&
      e.message.includes(join(d, 'generation_config.json')) && /"max_new_tokens" must be an integer >= 1, got -1/.test(e.message));
  });
});
