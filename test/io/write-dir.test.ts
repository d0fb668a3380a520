// An output folder is written whole or not at all, and its missing parents are made (as `mkdir -p`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDirAtomic } from '../../src/io/safetensors-write.js';

test('writeDirAtomic makes missing parent folders', () => {
  const root = mkdtempSync(join(tmpdir(), 'vlmkit-wd-'));
  try {
    const out = join(root, 'a', 'b', 'out');
    writeDirAtomic(out, (tmp) => writeFileSync(join(tmp, 'x.txt'), 'hi'));
    assert.equal(readFileSync(join(out, 'x.txt'), 'utf8'), 'hi');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('writeDirAtomic under a file is a one-line error naming the folder', () => {
  const root = mkdtempSync(join(tmpdir(), 'vlmkit-wd-'));
  try {
    writeFileSync(join(root, 'file'), '');
    const out = join(root, 'file', 'out');
    assert.throws(() => writeDirAtomic(out, () => {}), (e: Error) => e.message.includes(out) && !e.message.includes('\n'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
