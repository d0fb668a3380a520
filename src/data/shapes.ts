// "shapes" scenes: 1 to 6 objects (circle, square, triangle, star, diamond, hexagon) in 8 colours on a plain,
// gradient or lightly noisy background, with captions and questions: counts (all, of a kind, of a colour, of
// both), colour of a kind, presence, position, which is larger, and grounding with location tokens.
//
// Placement keeps every answer true in the pixels: two objects of the same colour never touch (so they count
// apart), and an object's centre never lies inside another object's circumcircle (so every object shows its
// colour at its centre, whichever is drawn on top).
import { boxToLocTokens, encodeBoxes, type LabeledBox } from './loc.js';
import { Canvas, Ellipse, Polygon, type Bounds, type Point, type Rgb, type Shape } from './raster.js';
import { Rng } from './rng.js';
import { capitalize, listWords, numberWord, phrase, pickQuestions, type Generator, type Maker, type QA, type Question, type QuestionMix } from './types.js';

export const SHAPE_COLORS: readonly { name: string; rgb: Rgb }[] = [
  { name: 'red', rgb: [220, 30, 30] },
  { name: 'orange', rgb: [250, 140, 0] },
  { name: 'yellow', rgb: [235, 200, 0] },
  { name: 'green', rgb: [30, 150, 50] },
  { name: 'blue', rgb: [30, 80, 220] },
  { name: 'purple', rgb: [130, 40, 170] },
  { name: 'pink', rgb: [245, 110, 185] },
  { name: 'brown', rgb: [120, 70, 25] },
];

export const SHAPE_KINDS = ['circle', 'square', 'triangle', 'star', 'diamond', 'hexagon'] as const;
export type ShapeKind = (typeof SHAPE_KINDS)[number];

const BACKGROUNDS: readonly { name: string; rgb: Rgb }[] = [
  { name: 'white', rgb: [248, 248, 248] },
  { name: 'gray', rgb: [212, 212, 212] },
  { name: 'beige', rgb: [240, 230, 205] },
  { name: 'light blue', rgb: [210, 225, 242] },
];

export interface ShapeObject {
  kind: ShapeKind;
  color: string;
  rgb: Rgb;
  cx: number;
  cy: number;
  /** circumradius in pixels */
  r: number;
  /** rotation in radians */
  rot: number;
}

export interface Background {
  style: 'plain' | 'gradient' | 'noise';
  rgb: Rgb;
  name: string;
  /** gradient: the second colour and the direction */
  rgb2?: Rgb;
  dir?: [number, number];
  /** noise: its seed and amplitude */
  noiseSeed?: number;
  noiseAmp?: number;
}

export interface ShapeScene {
  size: number;
  background: Background;
  /** in drawing order */
  objects: ShapeObject[];
}

function regular(cx: number, cy: number, r: number, n: number, start: number): Point[] {
  return Array.from({ length: n }, (_, k) => {
    const a = start + (k * 2 * Math.PI) / n;
    return [cx + r * Math.cos(a), cy + r * Math.sin(a)] as Point;
  });
}

function rotate(pts: Point[], cx: number, cy: number, rot: number): Point[] {
  const c = Math.cos(rot);
  const s = Math.sin(rot);
  return pts.map(([x, y]) => [cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c] as Point);
}

/** The fillable outline of an object. */
export function objectShape(o: ShapeObject): Ellipse | Polygon {
  const { cx, cy, r, rot } = o;
  const up = -Math.PI / 2 + rot;
  switch (o.kind) {
    case 'circle':
      return new Ellipse(cx, cy, r * 0.9, r * 0.9);
    case 'square':
      return new Polygon(regular(cx, cy, r, 4, Math.PI / 4 + rot));
    case 'triangle':
      return new Polygon(regular(cx, cy, r, 3, up));
    case 'star': {
      const pts: Point[] = [];
      for (let k = 0; k < 10; k++) {
        const a = up + (k * Math.PI) / 5;
        const rr = k % 2 === 0 ? r : r * 0.45;
        pts.push([cx + rr * Math.cos(a), cy + rr * Math.sin(a)]);
      }
      return new Polygon(pts);
    }
    case 'diamond':
      return new Polygon(rotate([[cx, cy - r], [cx + 0.65 * r, cy], [cx, cy + r], [cx - 0.65 * r, cy]], cx, cy, rot));
    case 'hexagon':
      return new Polygon(regular(cx, cy, r, 6, rot));
  }
}

export function objectBounds(o: ShapeObject): Bounds {
  return objectShape(o).bounds();
}

export function objectArea(o: ShapeObject): number {
  return objectShape(o).area();
}

/** True when b may be placed beside a (see the file comment). */
function compatible(a: ShapeObject, b: ShapeObject): boolean {
  const d = Math.hypot(a.cx - b.cx, a.cy - b.cy);
  if (a.color === b.color) return d >= a.r + b.r + 2;
  return d >= Math.max(a.r, b.r) + 0.35 * Math.min(a.r, b.r) + 1;
}

export function randomScene(rng: Rng, size: number): ShapeScene {
  const style = rng.pick(['plain', 'plain', 'gradient', 'noise'] as const);
  const bg = rng.pick(BACKGROUNDS);
  const background: Background = { style, rgb: bg.rgb, name: bg.name };
  if (style === 'gradient') {
    background.rgb2 = rng.pick(BACKGROUNDS.filter((b) => b !== bg)).rgb;
    const a = rng.float(0, 2 * Math.PI);
    background.dir = [Math.cos(a), Math.sin(a)];
  } else if (style === 'noise') {
    background.noiseSeed = rng.int(0, 0x7fffffff);
    background.noiseAmp = rng.int(6, 14);
  }
  // a few kinds and colours per scene, so that counts above one are common
  const kinds = rng.chance(0.7) ? rng.sample(SHAPE_KINDS, rng.int(1, 3)) : SHAPE_KINDS.slice();
  const colors = rng.chance(0.7) ? rng.sample(SHAPE_COLORS, rng.int(1, 3)) : SHAPE_COLORS.slice();
  const n = rng.int(1, 6);
  const rMin = Math.max(5, size * 0.07);
  const rMax = Math.max(rMin, size * 0.15);
  const objects: ShapeObject[] = [];
  for (let i = 0; i < n; i++) {
    const c = rng.pick(colors);
    const kind = rng.pick(kinds);
    for (let attempt = 0; attempt < 60; attempt++) {
      const r = rng.float(rMin, rMax);
      const o: ShapeObject = {
        kind,
        color: c.name,
        rgb: c.rgb,
        r,
        cx: rng.float(r + 1, size - r - 1),
        cy: rng.float(r + 1, size - r - 1),
        rot: kind === 'hexagon' ? rng.float(0, Math.PI / 3) : rng.float(-0.2, 0.2),
      };
      if (objects.every((p) => compatible(p, o))) {
        objects.push(o);
        break;
      }
    }
  }
  return { size, background, objects };
}

export function renderScene(scene: ShapeScene, only?: (o: ShapeObject, i: number) => boolean): Canvas {
  const { size, background: bg } = scene;
  const canvas = new Canvas(size, size);
  if (bg.style === 'gradient') canvas.gradient(bg.rgb, bg.rgb2!, bg.dir![0], bg.dir![1]);
  else canvas.clear(bg.rgb);
  if (bg.style === 'noise') canvas.noise(new Rng(bg.noiseSeed!), bg.noiseAmp!);
  scene.objects.forEach((o, i) => {
    if (!only || only(o, i)) canvas.fill(objectShape(o) as Shape, o.rgb);
  });
  return canvas;
}

const plural = (k: string) => `${k}s`;
const article = (word: string) => (/^[aeiou]/.test(word) ? 'an' : 'a');

export function describeScene(scene: ShapeScene): string {
  const groups = new Map<string, ShapeObject[]>();
  for (const o of [...scene.objects].sort((a, b) => a.cx - b.cx)) {
    const key = `${o.color} ${o.kind}`;
    groups.set(key, [...(groups.get(key) ?? []), o]);
  }
  const parts = [...groups.entries()].map(([key, list]) => (list.length === 1 ? `${article(key)} ${key}` : `${numberWord(list.length)} ${plural(key)}`));
  const bg = scene.background;
  const where = bg.style === 'gradient' ? 'a gradient background' : bg.style === 'noise' ? `a noisy ${bg.name} background` : `a plain ${bg.name} background`;
  return `${capitalize(listWords(parts))} on ${where}.`;
}

export const SHAPE_CATEGORIES = ['caption', 'count_total', 'count_kind', 'count_color', 'count_color_kind', 'color', 'presence', 'position', 'size', 'grounding', 'order', 'vertical', 'name_box'] as const;
/**
 * Asked only when --weights names them, so that datasets made before them are made again unchanged. They came
 * after the built-in model was found to carry each object's x to where it answers and never its y (its boxes start
 * at the topmost object's top, whatever was asked), as questions that need a named object's y: "order" lists the
 * objects from top to bottom, bottom to top, left to right or right to left; "vertical" asks whether A is above or
 * below B, or in the top or the bottom half (a top-to-bottom list can be built by taking the topmost object left
 * each time, this cannot); "name_box" writes an object's name right before its box ("red star<loc..>x4"), so that
 * the name's own token must predict that object's y_min. None moved that model in 450-step trials: the decoder's
 * projections that would carry y were never built, as a positional shortcut (the topmost object's top) took y's
 * error from the start. Asked in bulk from a first phase's first step (recipes/builtin/recipe-namebox.json), they
 * bring the boxes sooner but do not stop that shortcut either (recipes/builtin/README.md).
 */
export const SHAPE_OPT_IN = ['order', 'vertical', 'name_box'] as const;

const T = {
  caption: ['Describe the image.', 'Describe this image briefly.', 'What is in this picture?', 'What do you see in the image?'],
  count_total: ['How many shapes are there?', 'How many objects are in the image?', 'Count the shapes.', 'How many shapes can you see?'],
  count_kind: ['How many {kinds} are there?', 'How many {kinds} are in the image?', 'Count the {kinds}.', 'What is the number of {kinds}?'],
  count_color: ['How many {color} shapes are there?', 'How many {color} objects are in the image?', 'Count the {color} shapes.'],
  count_color_kind: ['How many {color} {kinds} are there?', 'How many {color} {kinds} are in the image?', 'Count the {color} {kinds}.'],
  color: ['What colour is the {kind}?', 'What color is the {kind}?', 'Which colour is the {kind}?', 'What is the colour of the {kind}?'],
  presence: ['Is there a {color} {kind}?', 'Is there a {color} {kind} in the image?', 'Can you see a {color} {kind}?', 'Does the image contain a {color} {kind}?'],
  horizontal: ['Is the {a} to the left or to the right of the {b}?', 'Is the {a} left or right of the {b}?'],
  vertical: ['Is the {a} above or below the {b}?', 'Is the {a} higher or lower than the {b}? Answer above or below.'],
  side: ['Is the {a} on the left or the right side of the image?', 'Which side of the image is the {a} on, left or right?'],
  half: ['Is the {a} in the top or the bottom half of the image?', 'Is the {a} at the top or at the bottom of the image?'],
  larger: ['Which is larger, the {a} or the {b}?', 'Which is bigger: the {a} or the {b}?'],
  smaller: ['Which is smaller, the {a} or the {b}?', 'Which one is smaller: the {a} or the {b}?'],
  name_box: ['Name each shape and give its box.', 'List every shape with its box.'],
  name_box_one: ['Give the name and the box of the {a}.', 'Name the {a} and give its box.'],
  grounding: ['Where is the {a}?', 'Find the {a}.', 'Detect the {a}.', 'Locate the {a} in the image.'],
  down: ['List the shapes from top to bottom.', 'Name the objects from top to bottom.'],
  up: ['List the shapes from bottom to top.', 'Name the objects from bottom to top.'],
  right: ['List the shapes from left to right.', 'Name the objects from left to right.'],
  left: ['List the shapes from right to left.', 'Name the objects from right to left.'],
};

/** The objects that "the red star" names alone. */
function uniquelyNamed(scene: ShapeScene): ShapeObject[] {
  const n = new Map<string, number>();
  for (const o of scene.objects) n.set(`${o.color} ${o.kind}`, (n.get(`${o.color} ${o.kind}`) ?? 0) + 1);
  return scene.objects.filter((o) => n.get(`${o.color} ${o.kind}`) === 1);
}

const nameOf = (o: ShapeObject) => `${o.color} ${o.kind}`;

export function objectBox(o: ShapeObject): LabeledBox {
  const b = objectBounds(o);
  // 1/100 px is plenty; outward rounding keeps the box around the object
  return { label: nameOf(o), x0: Math.floor(b.x0 * 100) / 100, y0: Math.floor(b.y0 * 100) / 100, x1: Math.ceil(b.x1 * 100) / 100, y1: Math.ceil(b.y1 * 100) / 100 };
}

export function askShapes(scene: ShapeScene, rng: Rng, k: number, mix?: QuestionMix): QA[] {
  const objs = scene.objects;
  const S = scene.size;
  const count = (f: (o: ShapeObject) => boolean) => String(objs.filter(f).length);
  // mostly present things, sometimes absent ones (answer 0)
  const someKind = () => (rng.chance(0.8) && objs.length ? rng.pick(objs).kind : rng.pick(SHAPE_KINDS));
  const someColor = () => (rng.chance(0.8) && objs.length ? rng.pick(objs).color : rng.pick(SHAPE_COLORS).name);
  const named = uniquelyNamed(scene);
  const unfound = named.slice();
  const clear = 0.12 * S;
  // the y questions, asked by position and by vertical alike
  const aboveBelow = (a: ShapeObject, b: ShapeObject): Question => ({ question: phrase(rng, T.vertical, { a: nameOf(a), b: nameOf(b) }), answer: a.cy < b.cy ? 'above' : 'below' });
  const topBottom = (a: ShapeObject): Question => ({ question: phrase(rng, T.half, { a: nameOf(a) }), answer: a.cy < S / 2 ? 'top' : 'bottom' });
  const makers: Maker[] = [
    [1, 'caption', () => ({ question: phrase(rng, T.caption), answer: describeScene(scene) })],
    [0.7, 'count_total', () => ({ question: phrase(rng, T.count_total), answer: String(objs.length) })],
    [1, 'count_kind', () => {
      const kind = someKind();
      return { question: phrase(rng, T.count_kind, { kinds: plural(kind) }), answer: count((o) => o.kind === kind) };
    }],
    [1, 'count_color', () => {
      const color = someColor();
      return { question: phrase(rng, T.count_color, { color }), answer: count((o) => o.color === color) };
    }],
    [1, 'count_color_kind', () => {
      const o = objs.length && rng.chance(0.8) ? rng.pick(objs) : null;
      const kind = o ? o.kind : rng.pick(SHAPE_KINDS);
      const color = o ? o.color : rng.pick(SHAPE_COLORS).name;
      return { question: phrase(rng, T.count_color_kind, { color, kinds: plural(kind) }), answer: count((x) => x.kind === kind && x.color === color) };
    }],
    [1, 'color', () => {
      const single = objs.filter((o) => objs.filter((p) => p.kind === o.kind).length === 1);
      if (!single.length) return null;
      const o = rng.pick(single);
      return { question: phrase(rng, T.color, { kind: o.kind }), answer: o.color };
    }],
    [1.2, 'presence', () => {
      const has = (c: string, kd: string) => objs.some((o) => o.color === c && o.kind === kd);
      let color: string, kind: string;
      if (objs.length && rng.chance(0.5)) {
        const o = rng.pick(objs);
        [color, kind] = [o.color, o.kind];
      } else {
        // an absent pair, often sharing the colour or the kind of something present (a harder "no")
        do {
          const o = objs.length ? rng.pick(objs) : null;
          color = o && rng.chance(0.5) ? o.color : rng.pick(SHAPE_COLORS).name;
          kind = o && rng.chance(0.5) ? o.kind : rng.pick(SHAPE_KINDS);
        } while (has(color, kind));
      }
      return { question: phrase(rng, T.presence, { color, kind }), answer: has(color, kind) ? 'yes' : 'no' };
    }],
    [1.2, 'position', () => {
      const options: (() => Question)[] = [];
      for (const a of named) {
        if (Math.abs(a.cx - S / 2) >= clear)
          options.push(() => ({ question: phrase(rng, T.side, { a: nameOf(a) }), answer: a.cx < S / 2 ? 'left' : 'right' }));
        if (Math.abs(a.cy - S / 2) >= clear) options.push(() => topBottom(a));
        for (const b of named) {
          if (a === b) continue;
          if (Math.abs(a.cx - b.cx) >= clear)
            options.push(() => ({ question: phrase(rng, T.horizontal, { a: nameOf(a), b: nameOf(b) }), answer: a.cx < b.cx ? 'left' : 'right' }));
          if (Math.abs(a.cy - b.cy) >= clear) options.push(() => aboveBelow(a, b));
        }
      }
      return options.length ? rng.pick(options)() : null;
    }],
    [1, 'size', () => {
      const pairs: [ShapeObject, ShapeObject][] = [];
      for (const a of named) for (const b of named) if (a !== b && objectArea(a) >= 1.6 * objectArea(b)) pairs.push([a, b]);
      if (!pairs.length) return null;
      const [big, small] = rng.pick(pairs);
      const [a, b] = rng.chance(0.5) ? [big, small] : [small, big];
      const askLarger = rng.chance(0.5);
      const question = phrase(rng, askLarger ? T.larger : T.smaller, { a: nameOf(a), b: nameOf(b) });
      return { question, answer: nameOf(askLarger ? big : small) };
    }],
    [1.2, 'grounding', () => {
      // each object found once (--repeat grounding=N asks for several); the first pick draws as pick(named) did
      if (!unfound.length) return null;
      const o = rng.pick(unfound);
      unfound.splice(unfound.indexOf(o), 1);
      const box = objectBox(o);
      return { question: phrase(rng, T.grounding, { a: nameOf(o) }), answer: encodeBoxes([box], S, S), box };
    }],
    [1, 'order', () => {
      // only when the order is plain to see: neighbours in it at least 0.05 of the image apart
      const dir = rng.pick(['down', 'up', 'right', 'left'] as const);
      const at = (o: ShapeObject) => (dir === 'down' || dir === 'up' ? o.cy : o.cx);
      const sorted = [...objs].sort((a, b) => (dir === 'down' || dir === 'right' ? at(a) - at(b) : at(b) - at(a)));
      if (sorted.length < 2 || sorted.some((o, i) => i > 0 && Math.abs(at(o) - at(sorted[i - 1]!)) < 0.05 * S)) return null;
      return { question: phrase(rng, T[dir]), answer: listWords(sorted.map(nameOf)) };
    }],
    [1, 'vertical', () => {
      // the position questions about y alone; mostly two named objects, so that neither is simply the topmost
      const pairs: [ShapeObject, ShapeObject][] = [];
      const halves: ShapeObject[] = [];
      for (const a of named) {
        if (Math.abs(a.cy - S / 2) >= clear) halves.push(a);
        for (const b of named) if (a !== b && Math.abs(a.cy - b.cy) >= clear) pairs.push([a, b]);
      }
      if (pairs.length && (!halves.length || rng.chance(0.75))) return aboveBelow(...rng.pick(pairs));
      return halves.length ? topBottom(rng.pick(halves)) : null;
    }],
    [1, 'name_box', () => {
      // name first, then box: "red star<loc..>x4 ; blue circle<loc..>x4", left to right as the caption goes
      // no space between the name and the box: the name's last token itself must predict y_min (with a space, that
      // token predicts the space, and y_min comes one position later, where attention has to fetch it again)
      const withBox = (o: ShapeObject) => `${nameOf(o)}${boxToLocTokens(objectBox(o), S, S)}`;
      if (named.length && rng.chance(0.5)) {
        const o = rng.pick(named);
        return { question: phrase(rng, T.name_box_one, { a: nameOf(o) }), answer: withBox(o) };
      }
      if (!objs.length) return null;
      return { question: phrase(rng, T.name_box), answer: [...objs].sort((a, b) => a.cx - b.cx).map(withBox).join(' ; ') };
    }],
  ];
  return pickQuestions(rng, k, makers, mix, SHAPE_OPT_IN);
}

export const shapesGenerator: Generator = {
  name: 'shapes',
  defaultSize: 128,
  minSize: 64,
  maxSize: 1024,
  categories: SHAPE_CATEGORIES,
  optIn: SHAPE_OPT_IN,
  generate(rng, size, questions, mix) {
    const scene = randomScene(rng, size);
    return { canvas: renderScene(scene), qas: askShapes(scene, rng, questions, mix) };
  },
  text(rng, size, questions) {
    return askShapes(randomScene(rng, size), rng, questions);
  },
};
