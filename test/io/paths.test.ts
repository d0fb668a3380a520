// `~` in paths given to the library means the home folder (a shell would have expanded it on a command line).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, copyFileSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { expandHome } from '../../src/io/paths.js';
import { loadVlm } from '../../src/api.js';

const FIXTURES = resolve('test/fixtures/reference');

test('expandHome: ~ and ~/x are the home folder; other paths are unchanged', () => {
  assert.equal(expandHome('~'), homedir());
  assert.equal(expandHome('~/a/b'), join(homedir(), 'a/b'));
  for (const p of ['a/~/b', '/x/~', '~user/x', 'rel', '']) assert.equal(expandHome(p), p);
});

test('loadVlm and image paths accept ~/...', async () => {
  const home = mkdtempSync(join(tmpdir(), 'vlmkit-home-'));
  const saved = process.env.HOME;
  try {
    symlinkSync(join(FIXTURES, 'tiny-smolvlm'), join(home, 'tiny'));
    copyFileSync(join(FIXTURES, 'images', 'wide_90x150.png'), join(home, 'pic.png'));
    process.env.HOME = home; // os.homedir() reads HOME on POSIX
    const vlm = await loadVlm('~/tiny');
    const r = await vlm.generate('What is in this image?', ['~/pic.png'], { maxNewTokens: 2 });
    assert.ok(r.tokenIds.length >= 1);
  } finally {
    if (saved === undefined) delete process.env.HOME;
    else process.env.HOME = saved;
    rmSync(home, { recursive: true, force: true });
  }
});
