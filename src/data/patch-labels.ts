// Dense labels of a shapes scene on the vision tower's patch grid: for every patch, the kind and colour of the
// object that covers it, and which part of that object's box it lies in. A vision tower trained to predict them
// (src/train/patches.ts) must learn what a language loss teaches slowly: the shape of an object, not only its
// colour (the built-in model's weak point), and where its edges are (for boxes).
//
// A patch belongs to the object with the most of its pixels (by pixel centre, the top-most object where objects
// overlap) when that object covers at least a quarter of the patch; otherwise it is background (label 0).
import { objectShape, SHAPE_COLORS, SHAPE_KINDS, type ShapeScene } from './shapes.js';

/** Every label set with its class names; class 0 is the background in each. */
export const PATCH_HEADS: Readonly<Record<string, readonly string[]>> = {
  kind: ['background', ...SHAPE_KINDS],
  color: ['background', ...SHAPE_COLORS.map((c) => c.name)],
  // the patch centre's third of the object's box, row-major: top-left, top, top-right, ..., bottom-right
  part: ['background', 'top-left', 'top', 'top-right', 'left', 'middle', 'right', 'bottom-left', 'bottom', 'bottom-right'],
};

/** How many bins the box-edge labels cut the picture's side into (2 px each at 128 px). */
export const BOX_BINS = 64;
const bins = ['background', ...Array.from({ length: BOX_BINS }, (_, i) => `bin${i}`)];

/**
 * The box heads: for every patch an object covers, where each edge of that object's whole box lies (its bin of the
 * picture's side). A patch then carries its object's box, not only its own place, so that a decoder can answer
 * "where is the red star?" by reading any patch of the star (the built-in model's boxes were near random when the
 * tower knew only the part of the box a patch lies in).
 */
export const BOX_HEADS: Readonly<Record<string, readonly string[]>> = { top: bins, left: bins, bottom: bins, right: bins };

/** The label sets a tower recipe can name: `base` (kind, colour, part) and `box` (those and the box edges). */
export const PATCH_HEAD_SETS: Readonly<Record<string, Readonly<Record<string, readonly string[]>>>> = {
  base: PATCH_HEADS,
  box: { ...PATCH_HEADS, ...BOX_HEADS },
};

export type PatchLabels = Record<string, Int32Array>;

/**
 * The labels of `scene` on a grid of `patch`-pixel patches (row-major, (size / patch)² of each). The scene's side
 * must be a multiple of the patch.
 */
export function scenePatchLabels(scene: ShapeScene, patch: number): PatchLabels {
  const S = scene.size;
  if (!Number.isInteger(patch) || patch < 1 || S % patch !== 0) throw new Error(`patch labels: a ${S} px scene is not a whole number of ${patch} px patches`);
  // the top-most object at every pixel centre (-1: background)
  const owner = new Int16Array(S * S).fill(-1);
  const spans: number[] = [];
  scene.objects.forEach((o, i) => {
    const shape = objectShape(o);
    const b = shape.bounds();
    for (let y = Math.max(0, Math.floor(b.y0)); y <= Math.min(S - 1, Math.ceil(b.y1)); y++) {
      spans.length = 0;
      shape.spans(y + 0.5, spans);
      for (let s = 0; s + 1 < spans.length; s += 2)
        for (let x = Math.max(0, Math.ceil(spans[s]! - 0.5)); x < S && x + 0.5 < spans[s + 1]!; x++) owner[y * S + x] = i;
    }
  });
  const g = S / patch, P = g * g;
  const kind = new Int32Array(P), color = new Int32Array(P), part = new Int32Array(P);
  const top = new Int32Array(P), left = new Int32Array(P), bottom = new Int32Array(P), right = new Int32Array(P);
  // an edge's bin, 1-based (0 is the background); the box may reach past the picture
  const bin = (v: number) => 1 + Math.min(BOX_BINS - 1, Math.max(0, Math.floor((v / S) * BOX_BINS)));
  const counts = new Int32Array(scene.objects.length);
  const boxes = scene.objects.map((o) => objectShape(o).bounds());
  for (let r = 0; r < g; r++)
    for (let c = 0; c < g; c++) {
      counts.fill(0);
      for (let y = r * patch; y < (r + 1) * patch; y++)
        for (let x = c * patch; x < (c + 1) * patch; x++) {
          const o = owner[y * S + x]!;
          if (o >= 0) counts[o]!++;
        }
      let best = -1;
      for (let i = 0; i < counts.length; i++) if (counts[i]! * 4 >= patch * patch && (best < 0 || counts[i]! > counts[best]!)) best = i;
      if (best < 0) continue;
      const o = scene.objects[best]!, bb = boxes[best]!;
      const p = r * g + c;
      kind[p] = 1 + SHAPE_KINDS.indexOf(o.kind);
      color[p] = 1 + SHAPE_COLORS.findIndex((k) => k.name === o.color);
      const third = (v: number, lo: number, hi: number) => Math.min(2, Math.max(0, Math.floor(((v - lo) / Math.max(1e-9, hi - lo)) * 3)));
      part[p] = 1 + third((r + 0.5) * patch, bb.y0, bb.y1) * 3 + third((c + 0.5) * patch, bb.x0, bb.x1);
      top[p] = bin(bb.y0);
      left[p] = bin(bb.x0);
      bottom[p] = bin(bb.y1);
      right[p] = bin(bb.x1);
    }
  return { kind, color, part, top, left, bottom, right };
}
