// Location tokens: box -> four tokens (y_min, x_min, y_max, x_max) and back, in the original image's pixels.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { boxToLocTokens, encodeBoxes, locToken, parseBoxes } from '../../src/data/loc.js';

describe('location tokens', () => {
  it('writes y_min, x_min, y_max, x_max as round(c / size * 1023)', () => {
    assert.equal(boxToLocTokens({ x0: 10, y0: 20, x1: 300, y1: 200 }, 640, 480), '<loc0043><loc0016><loc0426><loc0480>');
    assert.equal(boxToLocTokens({ x0: 0, y0: 0, x1: 640, y1: 480 }, 640, 480), '<loc0000><loc0000><loc1023><loc1023>');
    assert.equal(locToken(7), '<loc0007>');
    assert.throws(() => locToken(1024), /outside/);
  });

  it('round-trips boxes within half a bin, with labels and several boxes', () => {
    const W = 333, H = 517;
    const boxes = [
      { label: 'red star', x0: 12.4, y0: 40.2, x1: 99.9, y1: 141 },
      { label: 'blue circle', x0: 200, y0: 300, x1: 333, y1: 517 },
    ];
    const text = encodeBoxes(boxes, W, H);
    assert.match(text, /^(<loc\d{4}>){4} red star ; (<loc\d{4}>){4} blue circle$/);
    const p = parseBoxes(text, W, H);
    assert.equal(p.text, 'red star ; blue circle');
    assert.equal(p.boxes.length, 2);
    p.boxes.forEach((b, i) => {
      assert.equal(b.label, boxes[i]!.label);
      for (const [k, size] of [['x0', W], ['x1', W], ['y0', H], ['y1', H]] as const) {
        const err = Math.abs(b[k] - boxes[i]![k]);
        assert.ok(Number.isFinite(err) && err <= size / 1023 / 2 + 1e-9, `${k}: ${b[k]} vs ${boxes[i]![k]}`);
      }
    });
  });

  it('ignores an incomplete group but removes its tokens from the text', () => {
    const p = parseBoxes('found <loc0100><loc0200> it', 100, 100);
    assert.deepEqual(p.boxes, []);
    assert.equal(p.text, 'found it');
    const q = parseBoxes('<loc0300><loc0100><loc0200><loc0050> cat', 1023, 1023);
    assert.deepEqual(q.boxes, [{ label: 'cat', x0: 50, y0: 200, x1: 100, y1: 300 }]);
  });
});
