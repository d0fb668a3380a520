// The playground reads the boxes of a grounded answer in the page (src/serve/playground/grounding.js, plain
// browser JavaScript); it must read them exactly as `vlmkit ask --json` does (src/eval/grounding.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { answerBoxes, stripLocTokens } from '../../src/eval/grounding.js';
import { ROOT } from './helpers.js';

interface PageBox { label: string; u0: number; v0: number; u1: number; v1: number; x0: number; y0: number; x1: number; y1: number }
interface PageGrounding {
  answerBoxes(answer: string, width: number, height: number): PageBox[];
  stripLocTokens(answer: string): string;
  streamingText(raw: string): string;
}

const page = (await import(pathToFileURL(join(ROOT, 'src', 'serve', 'playground', 'grounding.js')).href)) as PageGrounding;

const ANSWERS = [
  '<loc0035><loc0137><loc0248><loc0320> red circle',
  '<loc0100><loc0200><loc0300><loc0400> blue square ; <loc0900><loc0010><loc0500><loc1023> green triangle',
  ' <loc0000><loc0000><loc1023><loc1023>',
  '<loc0100><loc0200><loc0300> cut off',
  'There are <loc0005><loc0006><loc0007><loc9999>two  circles\n and <loc0001> more.',
  'no boxes here  ',
  '<loc0512><loc0512><loc0512><loc0512>dot<loc0001><loc0002><loc0003><loc0004>;x',
];

describe('playground grounding', () => {
  it('reads the same boxes and text as the CLI for every answer', () => {
    for (const a of ANSWERS) {
      for (const [w, h] of [[128, 128], [640, 427], [31, 1000]] as const) {
        const cli = answerBoxes(a, w, h);
        const got = page.answerBoxes(a, w, h);
        assert.deepEqual(got.map(({ label, x0, y0, x1, y1 }) => ({ label, x0, y0, x1, y1 })), cli.boxes, `${JSON.stringify(a)} at ${w}x${h}`);
        for (const b of got) {
          assert.ok(Math.abs(b.u0 * w - b.x0) <= 0.005 + 1e-9 && Math.abs(b.v1 * h - b.y1) <= 0.005 + 1e-9, 'fractions and pixels agree');
        }
      }
      assert.equal(page.stripLocTokens(a), stripLocTokens(a), JSON.stringify(a));
    }
    assert.equal(page.answerBoxes(ANSWERS[1]!, 100, 100).length, 2);
    assert.equal(page.answerBoxes(ANSWERS[3]!, 100, 100).length, 0);
  });

  it('holds back a token cut across stream pieces, never shows a partial one', () => {
    const full = ANSWERS[0]!;
    for (let i = 0; i <= full.length; i++) {
      const shown = page.streamingText(full.slice(0, i));
      assert.ok(!shown.includes('<'), `${JSON.stringify(full.slice(0, i))} shows ${JSON.stringify(shown)}`);
      assert.ok('red circle'.startsWith(shown), `${JSON.stringify(shown)} is a start of the final text`);
    }
    assert.equal(page.streamingText('a < b'), 'a < b');
  });
});
