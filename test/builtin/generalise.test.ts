// Pictures drawn by other means than the shapes generator, for the check that the built-in model generalises beyond
// it: drawn here pixel by pixel with no antialiasing (exact circles and axis-aligned squares in clear colours near,
// not at, the generator's palette, on pure white, one of them not square), with questions in the generator's
// phrasings (src/data/shapes.ts). These tests check the pictures, that the expected answers are the generator's
// own for the same objects, and that the built-in model gives them.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { askShapes, SHAPE_CATEGORIES, SHAPE_COLORS, type ShapeKind, type ShapeScene } from '../../src/data/shapes.js';
import { Rng } from '../../src/data/rng.js';
import type { RgbImage } from '../../src/processing/decode.js';
import { BUILTIN_MODEL_DIR, loadVlm } from '../../src/api.js';
import { normalizeExact } from '../../src/eval/metrics.js';

type Rgb = [number, number, number];
const WHITE: Rgb = [255, 255, 255];
// the generator's red (220,30,30), green (30,150,50) and blue (30,80,220), moved by 10-15 per channel
const COLOURS: Record<string, Rgb> = { red: [235, 20, 20], green: [20, 160, 40], blue: [20, 70, 235] };

interface Drawn {
  kind: 'circle' | 'square';
  colour: keyof typeof COLOURS;
  cx: number;
  cy: number;
  /** circle: radius; square: half the side */
  r: number;
}

interface Case {
  name: string;
  width: number;
  height: number;
  shapes: Drawn[];
  /** question -> the right answer */
  qa: [string, string][];
}

const CASES: Case[] = [
  {
    name: 'three red circles',
    width: 128,
    height: 128,
    shapes: [
      { kind: 'circle', colour: 'red', cx: 30, cy: 34, r: 13 },
      { kind: 'circle', colour: 'red', cx: 92, cy: 40, r: 12 },
      { kind: 'circle', colour: 'red', cx: 58, cy: 96, r: 14 },
    ],
    qa: [['How many circles are there?', '3'], ['How many shapes are there?', '3'], ['How many red circles are there?', '3'], ['Is there a red square?', 'no']],
  },
  {
    name: 'one blue circle',
    width: 128,
    height: 128,
    shapes: [{ kind: 'circle', colour: 'blue', cx: 70, cy: 58, r: 17 }],
    qa: [['What colour is the circle?', 'blue'], ['How many circles are there?', '1'], ['Is there a blue circle?', 'yes']],
  },
  {
    name: 'four green squares',
    width: 128,
    height: 128,
    shapes: [
      { kind: 'square', colour: 'green', cx: 28, cy: 28, r: 11 },
      { kind: 'square', colour: 'green', cx: 98, cy: 31, r: 10 },
      { kind: 'square', colour: 'green', cx: 33, cy: 96, r: 12 },
      { kind: 'square', colour: 'green', cx: 94, cy: 93, r: 11 },
    ],
    qa: [['How many squares are there?', '4'], ['How many green shapes are there?', '4']],
  },
  {
    name: 'two red squares and a blue circle',
    width: 128,
    height: 128,
    shapes: [
      { kind: 'square', colour: 'red', cx: 30, cy: 40, r: 12 },
      { kind: 'square', colour: 'red', cx: 96, cy: 86, r: 11 },
      { kind: 'circle', colour: 'blue', cx: 88, cy: 28, r: 14 },
    ],
    qa: [['What colour is the circle?', 'blue'], ['How many squares are there?', '2'], ['How many red shapes are there?', '2']],
  },
  {
    name: 'five blue circles on a 160x128 picture',
    width: 160,
    height: 128,
    shapes: [
      { kind: 'circle', colour: 'blue', cx: 26, cy: 28, r: 12 },
      { kind: 'circle', colour: 'blue', cx: 80, cy: 30, r: 13 },
      { kind: 'circle', colour: 'blue', cx: 134, cy: 26, r: 11 },
      { kind: 'circle', colour: 'blue', cx: 48, cy: 96, r: 13 },
      { kind: 'circle', colour: 'blue', cx: 116, cy: 94, r: 12 },
    ],
    qa: [['How many circles are there?', '5'], ['How many shapes are there?', '5']],
  },
];

function inside(s: Drawn, x: number, y: number): boolean {
  // pixel centres, so a shape covers the same pixels wherever it lies on the grid
  const dx = x + 0.5 - s.cx;
  const dy = y + 0.5 - s.cy;
  return s.kind === 'circle' ? dx * dx + dy * dy <= s.r * s.r : Math.abs(dx) <= s.r && Math.abs(dy) <= s.r;
}

/** Each pixel is the colour of the shape it lies in, or white: no antialiasing. */
function draw(c: Case): RgbImage {
  const data = new Uint8Array(c.width * c.height * 3);
  for (let y = 0; y < c.height; y++)
    for (let x = 0; x < c.width; x++) {
      const s = c.shapes.find((d) => inside(d, x, y));
      data.set(s ? COLOURS[s.colour]! : WHITE, (y * c.width + x) * 3);
    }
  return { width: c.width, height: c.height, data };
}

/** Connected (4-neighbour) regions of non-white pixels, each with the set of colours in it. */
function regions(img: RgbImage): string[][] {
  const { width: w, height: h, data } = img;
  const seen = new Uint8Array(w * h);
  const white = (i: number) => data[i * 3] === 255 && data[i * 3 + 1] === 255 && data[i * 3 + 2] === 255;
  const out: string[][] = [];
  for (let start = 0; start < w * h; start++) {
    if (seen[start] || white(start)) continue;
    const colours = new Set<string>();
    const stack = [start];
    seen[start] = 1;
    while (stack.length) {
      const i = stack.pop()!;
      colours.add(`${data[i * 3]},${data[i * 3 + 1]},${data[i * 3 + 2]}`);
      const x = i % w;
      const y = (i - x) / w;
      for (const [nx, ny] of [[x - 1, y], [x + 1, y], [x, y - 1], [x, y + 1]] as const) {
        if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
        const j = ny * w + nx;
        if (!seen[j] && !white(j)) {
          seen[j] = 1;
          stack.push(j);
        }
      }
    }
    out.push([...colours]);
  }
  return out;
}

/** The same objects as a generator scene (the generator's circle fills 0.9 of its r; a square's r is its corner). */
function asScene(c: Case): ShapeScene {
  return {
    size: Math.max(c.width, c.height),
    background: { style: 'plain', rgb: WHITE, name: 'white' },
    objects: c.shapes.map((s) => ({
      kind: s.kind as ShapeKind,
      color: s.colour,
      rgb: SHAPE_COLORS.find((k) => k.name === s.colour)!.rgb,
      cx: s.cx,
      cy: s.cy,
      r: s.kind === 'circle' ? s.r / 0.9 : s.r * Math.SQRT2,
      rot: 0,
    })),
  };
}

describe('the built-in model on pictures drawn by other means', () => {
  it('each picture shows its shapes apart, whole, one colour each', () => {
    for (const c of CASES) {
      const img = draw(c);
      const found = regions(img);
      assert.equal(found.length, c.shapes.length, `${c.name}: ${found.length} separate shapes drawn`);
      for (const r of found) assert.equal(r.length, 1, `${c.name}: a shape of several colours`);
      for (const s of c.shapes) assert.ok(s.cx - s.r >= 1 && s.cy - s.r >= 1 && s.cx + s.r <= c.width - 1 && s.cy + s.r <= c.height - 1, `${c.name}: a shape touches the edge`);
    }
  });

  it('the expected answers are the generator\'s own for the same objects', () => {
    for (const c of CASES) {
      const want = new Map(c.qa);
      const checked = new Set<string>();
      const scene = asScene(c);
      for (let i = 0; i < 20000 && checked.size < want.size; i++)
        for (const qa of askShapes(scene, new Rng(i), SHAPE_CATEGORIES.length)) {
          const w = want.get(qa.question);
          if (w === undefined) continue;
          assert.equal(w, qa.answer, `${c.name}: ${qa.question}`);
          checked.add(qa.question);
        }
      assert.deepEqual(c.qa.map(([q]) => q).filter((q) => !checked.has(q)), [], `${c.name}: questions the generator never asked`);
    }
  });

  it('the built-in model counts and names them right', async () => {
    const vlm = await loadVlm(BUILTIN_MODEL_DIR);
    const wrong: string[] = [];
    try {
      for (const c of CASES) {
        const img = draw(c);
        for (const [q, want] of c.qa) {
          const got = normalizeExact((await vlm.generate(q, [img], { temperature: 0, maxNewTokens: 16 })).text);
          if (got !== normalizeExact(want)) wrong.push(`${c.name}: "${q}" got "${got}", want "${want}"`);
        }
      }
    } finally {
      vlm.dispose();
    }
    assert.deepEqual(wrong, [], `${wrong.length} of ${CASES.reduce((n, c) => n + c.qa.length, 0)} answers wrong`);
  });
});
