// Shapes scenes: the answers are true of the pixels. Each object shows its exact colour at its centre, every
// pixel it changes lies in its box, counts match the scene (and, for scenes without overlaps on a plain
// background, the number of separate blobs of each colour in the image), grounding answers decode to the box.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBoxes, parseBoxes } from '../../src/data/loc.js';
import { Rng } from '../../src/data/rng.js';
import { askShapes, objectBox, randomScene, renderScene, SHAPE_COLORS, type ShapeScene } from '../../src/data/shapes.js';

const SIZE = 128;
const scenes: ShapeScene[] = Array.from({ length: 150 }, (_, i) => randomScene(new Rng(1000 + i), SIZE));

/**
 * 8-connected blobs of at least 5 pixels exactly equal to rgb (a star's tip can leave a fully covered pixel or
 * two that touch the body only through edge pixels).
 */
function blobs(data: Uint8Array, w: number, h: number, rgb: readonly number[]): number {
  const seen = new Uint8Array(w * h);
  const is = (p: number) => data[p * 3] === rgb[0] && data[p * 3 + 1] === rgb[1] && data[p * 3 + 2] === rgb[2];
  let n = 0;
  for (let p = 0; p < w * h; p++) {
    if (seen[p] || !is(p)) continue;
    let size = 0;
    const stack = [p];
    seen[p] = 1;
    while (stack.length) {
      const q = stack.pop()!;
      size++;
      const x = q % w, y = (q - x) / w;
      for (const [nx, ny] of [[x - 1, y], [x + 1, y], [x, y - 1], [x, y + 1], [x - 1, y - 1], [x + 1, y - 1], [x - 1, y + 1], [x + 1, y + 1]] as const) {
        const r = ny * w + nx;
        if (nx >= 0 && ny >= 0 && nx < w && ny < h && !seen[r] && is(r)) {
          seen[r] = 1;
          stack.push(r);
        }
      }
    }
    if (size >= 5) n++;
  }
  return n;
}

describe('shapes scenes', () => {
  it('has 1 to 6 objects, each visible in its colour at its centre, each change inside its box', () => {
    let objects = 0;
    for (const scene of scenes.slice(0, 60)) {
      assert.ok(scene.objects.length >= 1 && scene.objects.length <= 6);
      const full = renderScene(scene);
      scene.objects.forEach((o, i) => {
        objects++;
        assert.deepEqual(full.pixel(Math.floor(o.cx), Math.floor(o.cy)), [...o.rgb], `${o.color} ${o.kind} centre`);
        const without = renderScene(scene, (_, j) => j !== i);
        const b = objectBox(o);
        let changed = 0;
        for (let y = 0; y < SIZE; y++)
          for (let x = 0; x < SIZE; x++) {
            const k = (y * SIZE + x) * 3;
            if (full.data[k] === without.data[k] && full.data[k + 1] === without.data[k + 1] && full.data[k + 2] === without.data[k + 2]) continue;
            changed++;
            assert.ok(x >= Math.floor(b.x0) && x < Math.ceil(b.x1) && y >= Math.floor(b.y0) && y < Math.ceil(b.y1), `pixel ${x},${y} outside the box of the ${b.label}`);
          }
        assert.ok(changed > 20, `the ${b.label} changed only ${changed} pixels`);
      });
    }
    assert.ok(objects > 100);
  });

  it('counts each colour as the image shows it (plain backgrounds, no overlaps)', () => {
    let checked = 0;
    for (const scene of scenes) {
      const apart = scene.objects.every((a, i) => scene.objects.every((b, j) => i === j || Math.hypot(a.cx - b.cx, a.cy - b.cy) > a.r + b.r + 1));
      if (scene.background.style !== 'plain' || !apart) continue;
      const c = renderScene(scene);
      for (const col of SHAPE_COLORS) {
        assert.equal(blobs(c.data, SIZE, SIZE, col.rgb), scene.objects.filter((o) => o.color === col.name).length, col.name);
      }
      checked++;
    }
    assert.ok(checked >= 10, `only ${checked} scenes qualified`);
  });

  it('answers every question type correctly for the scene', () => {
    const seen = new Set<string>();
    scenes.forEach((scene, i) => {
      const rng = new Rng(i);
      for (const qa of askShapes(scene, rng, 10)) {
        seen.add(qa.category);
        const q = qa.question;
        const objs = scene.objects;
        const m = /many (\w+) (\w+)s (?:are|in)/.exec(q) ?? /Count the (\w+) (\w+)s\./.exec(q);
        if (qa.category === 'count_color_kind') assert.equal(qa.answer, String(objs.filter((o) => o.color === m![1] && o.kind === m![2]).length), q);
        if (qa.category === 'count_total') assert.equal(qa.answer, String(objs.length));
        if (qa.category === 'presence') {
          const [, color, kind] = / an? (\w+) (\w+)/.exec(q)!;
          assert.equal(qa.answer, objs.some((o) => o.color === color && o.kind === kind) ? 'yes' : 'no', q);
        }
        if (qa.category === 'color') {
          const kind = /the (\w+)\?$/.exec(q)![1];
          const match = objs.filter((o) => o.kind === kind);
          assert.equal(match.length, 1, q);
          assert.equal(qa.answer, match[0]!.color);
        }
        if (qa.category === 'grounding') {
          assert.ok(qa.box);
          const p = parseBoxes(qa.answer, SIZE, SIZE);
          assert.equal(p.boxes.length, 1);
          assert.equal(p.text, qa.box.label);
          for (const k of ['x0', 'y0', 'x1', 'y1'] as const) assert.ok(Math.abs(p.boxes[0]![k] - qa.box[k]) <= SIZE / 2046 + 1e-9, `${k}`);
        }
        assert.ok(qa.answer.length > 0 && qa.question.length > 0);
      }
    });
    for (const c of ['caption', 'count_total', 'count_kind', 'count_color', 'count_color_kind', 'color', 'presence', 'position', 'size', 'grounding']) assert.ok(seen.has(c), `no ${c} question`);
  });

  it('asks the opt-in order question only when --weights names it, with the objects in the order asked', () => {
    let asked = 0;
    const dirs = new Set<string>();
    scenes.forEach((scene, i) => {
      assert.ok(!askShapes(scene, new Rng(i), 11).some((qa) => qa.category === 'order'), 'order is opt-in');
      for (const qa of askShapes(scene, new Rng(i), 11, { weights: { order: 1 } })) {
        if (qa.category !== 'order') continue;
        asked++;
        const [, from, to] = /from (\w+) to (\w+)\.$/.exec(qa.question)!;
        dirs.add(from!);
        const at = (o: ShapeScene['objects'][number]) => (from === 'top' || from === 'bottom' ? o.cy : o.cx);
        const sign = from === 'top' || from === 'left' ? 1 : -1;
        const want = [...scene.objects].sort((a, b) => sign * (at(a) - at(b))).map((o) => `${o.color} ${o.kind}`);
        assert.equal(qa.answer, want.length === 1 ? want[0] : `${want.slice(0, -1).join(', ')} and ${want[want.length - 1]}`, `${qa.question} (to ${to})`);
        // plain to see: neighbours in the order at least 5% of the image apart
        const sorted = [...scene.objects].sort((a, b) => sign * (at(a) - at(b)));
        for (let j = 1; j < sorted.length; j++) assert.ok(Math.abs(at(sorted[j]!) - at(sorted[j - 1]!)) >= 0.05 * SIZE);
        assert.ok(sorted.length >= 2);
      }
    });
    assert.ok(asked >= 20, `order asked of ${asked} of ${scenes.length} scenes`);
    assert.deepEqual([...dirs].sort(), ['bottom', 'left', 'right', 'top']);
  });

  it('asks the opt-in vertical question only when --weights names it, answered by the objects\' y', () => {
    const seen = { pair: 0, half: 0 };
    const answers = new Set<string>();
    scenes.forEach((scene, i) => {
      assert.ok(!askShapes(scene, new Rng(i), 11).some((qa) => qa.category === 'vertical'), 'vertical is opt-in');
      const byName = (name: string) => {
        const match = scene.objects.filter((o) => `${o.color} ${o.kind}` === name);
        assert.equal(match.length, 1, `${name} names one object`);
        return match[0]!;
      };
      for (const qa of askShapes(scene, new Rng(i), 11, { weights: { vertical: 1 } })) {
        if (qa.category !== 'vertical') continue;
        answers.add(qa.answer);
        const pair = /^Is the (.+?) (?:above or below|higher or lower than) the (.+?)\?/.exec(qa.question);
        if (pair) {
          seen.pair++;
          const [a, b] = [byName(pair[1]!), byName(pair[2]!)];
          assert.equal(qa.answer, a.cy < b.cy ? 'above' : 'below', qa.question);
          assert.ok(Math.abs(a.cy - b.cy) >= 0.12 * SIZE, 'plain to see');
        } else {
          const half = /^Is the (.+?) (?:in the top or the bottom half|at the top or at the bottom) of the image\?$/.exec(qa.question);
          assert.ok(half, qa.question);
          seen.half++;
          const a = byName(half[1]!);
          assert.equal(qa.answer, a.cy < SIZE / 2 ? 'top' : 'bottom', qa.question);
          assert.ok(Math.abs(a.cy - SIZE / 2) >= 0.12 * SIZE, 'plain to see');
        }
      }
    });
    assert.ok(seen.pair >= 20 && seen.half >= 5, `asked ${JSON.stringify(seen)} of ${scenes.length} scenes`);
    assert.deepEqual([...answers].sort(), ['above', 'below', 'bottom', 'top']);
  });

  it('asks the opt-in name_box question only when --weights names it: each name, then that object\'s box', () => {
    let one = 0;
    let all = 0;
    scenes.forEach((scene, i) => {
      assert.ok(!askShapes(scene, new Rng(i), 12).some((qa) => qa.category === 'name_box'), 'name_box is opt-in');
      for (const qa of askShapes(scene, new Rng(i), 12, { weights: { name_box: 1 } })) {
        if (qa.category !== 'name_box') continue;
        const items = qa.answer.split(' ; ').map((item) => /^(\w+ \w+)((?:<loc\d{4}>){4})$/.exec(item));
        assert.ok(items.every(Boolean), qa.answer);
        const named = /the (\w+ \w+) and give|of the (\w+ \w+)\.$/.exec(qa.question);
        // left to right, as the caption lists them; one object when the question names one
        const want = named ? scene.objects.filter((o) => `${o.color} ${o.kind}` === (named[1] ?? named[2])) : [...scene.objects].sort((a, b) => a.cx - b.cx);
        if (named) one++;
        else all++;
        assert.equal(items.length, want.length, qa.question);
        items.forEach((m, j) => {
          const box = objectBox(want[j]!);
          assert.equal(m![1], box.label);
          assert.equal(m![2], encodeBoxes([{ ...box, label: '' }], SIZE, SIZE));
        });
      }
    });
    assert.ok(one >= 10 && all >= 10, `one ${one}, all ${all} of ${scenes.length} scenes`);
  });

  it('is deterministic by seed', () => {
    const a = renderScene(randomScene(new Rng(5), SIZE));
    const b = renderScene(randomScene(new Rng(5), SIZE));
    const c = renderScene(randomScene(new Rng(6), SIZE));
    assert.deepEqual(a.data, b.data);
    assert.notDeepEqual(a.data, c.data);
  });
});
