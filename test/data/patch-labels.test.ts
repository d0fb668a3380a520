// Patch labels of a scene, against what the test works out by hand for objects placed on the patch grid.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BOX_BINS, PATCH_HEADS, PATCH_HEAD_SETS, scenePatchLabels } from '../../src/data/patch-labels.js';
import type { ShapeObject, ShapeScene } from '../../src/data/shapes.js';

const bg = { style: 'plain' as const, rgb: [248, 248, 248] as const, name: 'white' };
const obj = (o: Partial<ShapeObject>): ShapeObject => ({ kind: 'square', color: 'red', rgb: [220, 30, 30], cx: 0, cy: 0, r: 10, rot: 0, ...o });

describe('scenePatchLabels', () => {
  it('labels the patches a square covers with its kind, colour and part of its box, the rest background', () => {
    // an axis-aligned square (rot 0 puts its corners on the diagonals): circumradius 12·√2 gives a side of 24 px,
    // from (8, 8) to (32, 32): exactly the 3x3 patches of rows and columns 1..3 of 8 px patches
    const scene: ShapeScene = { size: 64, background: bg, objects: [obj({ cx: 20, cy: 20, r: 12 * Math.SQRT2, color: 'blue', rgb: [30, 80, 220] })] };
    const l = scenePatchLabels(scene, 8);
    const g = 8;
    for (let r = 0; r < g; r++)
      for (let c = 0; c < g; c++) {
        const inside = r >= 1 && r <= 3 && c >= 1 && c <= 3;
        const p = r * g + c;
        assert.equal(PATCH_HEADS.kind![l.kind![p]!], inside ? 'square' : 'background', `kind of patch (${r}, ${c})`);
        assert.equal(PATCH_HEADS.color![l.color![p]!], inside ? 'blue' : 'background', `colour of patch (${r}, ${c})`);
        const part = inside ? ['top-left', 'top', 'top-right', 'left', 'middle', 'right', 'bottom-left', 'bottom', 'bottom-right'][(r - 1) * 3 + (c - 1)] : 'background';
        assert.equal(PATCH_HEADS.part![l.part![p]!], part, `part of patch (${r}, ${c})`);
        // the square's box is (8, 8)-(32, 32) of 64 px: each edge's bin (1-based; bin b spans b-1 .. b of
        // BOX_BINS) holds it, to the float rounding of an edge that falls on a bin's boundary
        const edges = [l.top![p]!, l.left![p]!, l.bottom![p]!, l.right![p]!];
        if (!inside) assert.deepEqual(edges, [0, 0, 0, 0], `box edges of background patch (${r}, ${c})`);
        else
          edges.forEach((b, i) => {
            const px = [8, 8, 32, 32][i]!, w = 64 / BOX_BINS;
            assert.ok(px >= (b - 1) * w - 1e-6 && px <= b * w + 1e-6, `patch (${r}, ${c}) edge ${i}: bin ${b} does not hold ${px} px`);
          });
        assert.equal(PATCH_HEAD_SETS.box!.top![edges[0]!]!.startsWith('bin'), inside);
      }
  });

  it('gives an overlapped patch to the object drawn last, and a patch less than a quarter covered to the background', () => {
    // two squares of side 16 (circumradius 8·√2): the second, drawn on top, covers patch (1, 1) whole
    const scene: ShapeScene = {
      size: 32, background: bg, objects: [
        obj({ cx: 12, cy: 12, r: 8 * Math.SQRT2, kind: 'square', color: 'red' }),
        obj({ cx: 16, cy: 16, r: 8 * Math.SQRT2, kind: 'square', color: 'green', rgb: [30, 150, 50] }),
      ],
    };
    const l = scenePatchLabels(scene, 8);
    assert.equal(PATCH_HEADS.color![l.color![1 * 4 + 1]!], 'green');
    assert.equal(PATCH_HEADS.color![l.color![0]!], 'red', 'patch (0, 0): only the red square, 4x4 px = a quarter of it');
    // a circle of radius 0.9·4 = 3.6 around (4, 4) covers ~40 of 64 px; one around (28, 28) of radius 1.8 covers ~10
    const small: ShapeScene = { size: 32, background: bg, objects: [obj({ kind: 'circle', cx: 4, cy: 4, r: 4 }), obj({ kind: 'circle', cx: 28, cy: 28, r: 2 })] };
    const s = scenePatchLabels(small, 8);
    assert.equal(PATCH_HEADS.kind![s.kind![0]!], 'circle');
    assert.equal(PATCH_HEADS.kind![s.kind![15]!], 'background');
  });

  it('refuses a patch that does not divide the scene', () => {
    assert.throws(() => scenePatchLabels({ size: 30, background: bg, objects: [] }, 8), /not a whole number of 8 px patches/);
  });
});
