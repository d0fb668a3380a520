// The CLI's progress line for image encoding: rewritten in place on a terminal, cleared after the last tile,
// absent when stderr is not a terminal (pipes, files, --json consumers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { tileProgress } from '../../src/cli/io.js';

function sink(tty: boolean): Writable & { isTTY?: boolean; text: string } {
  const w = new Writable({
    write(chunk, _enc, cb) {
      w.text += String(chunk);
      cb();
    },
  }) as Writable & { isTTY?: boolean; text: string };
  w.text = '';
  if (tty) w.isTTY = true;
  return w;
}

test('tile progress: one line on a TTY, cleared at the end; nothing elsewhere', () => {
  const err = sink(true);
  const p = tileProgress({ stdout: sink(true), stderr: err, stdin: process.stdin });
  assert.ok(p);
  p(1, 3);
  p(2, 3);
  p(3, 3);
  assert.match(err.text, /encoding image tiles 1\/3[^\n]*encoding image tiles 2\/3/);
  assert.ok(!err.text.includes('\n'), 'the line is rewritten in place');
  assert.ok(err.text.endsWith('\r\x1b[2K'), 'and cleared after the last tile');
  assert.equal(tileProgress({ stdout: sink(false), stderr: sink(false), stdin: process.stdin }), undefined);
});
