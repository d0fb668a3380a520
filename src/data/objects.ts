// "objects" scenes for contrastive training: one shape (circle, square, triangle, star, diamond, hexagon) in one of
// 8 colours on the shapes backgrounds (plain, gradient, noisy), captioned "a red circle". Its rows are image-text
// pairs {"image", "text"} (what `vlmkit train contrastive` reads), and every caption is one of the 48 labels of
// objectLabels(), so a held-out split measures zero-shot accuracy over all colour x shape labels.
import { type ShapeObject, SHAPE_COLORS, SHAPE_KINDS, randomScene, renderScene } from './shapes.js';
import type { Rng } from './rng.js';
import type { Generator, QA } from './types.js';

/** "a red circle" (the article as English has it: "an orange star"). */
export function objectCaption(color: string, kind: string): string {
  return `${/^[aeiou]/.test(color) ? 'an' : 'a'} ${color} ${kind}`;
}

/** Every caption a scene can have: colour-major, in SHAPE_COLORS x SHAPE_KINDS order. */
export function objectLabels(): string[] {
  return SHAPE_COLORS.flatMap((c) => SHAPE_KINDS.map((k) => objectCaption(c.name, k)));
}

/** One object, large enough to read at 64 px (circumradius 18-38% of the side), anywhere it fits. */
function oneObject(rng: Rng, size: number): ShapeObject {
  const c = rng.pick(SHAPE_COLORS), kind = rng.pick(SHAPE_KINDS);
  const r = rng.float(size * 0.18, size * 0.38);
  return {
    kind, color: c.name, rgb: c.rgb, r,
    cx: rng.float(r + 1, size - r - 1), cy: rng.float(r + 1, size - r - 1),
    rot: kind === 'hexagon' ? rng.float(0, Math.PI / 3) : rng.float(-0.2, 0.2),
  };
}

function captionOf(o: ShapeObject): QA {
  return { category: 'caption', question: 'Describe the object.', answer: objectCaption(o.color, o.kind) };
}

export const objectsGenerator: Generator = {
  name: 'objects',
  defaultSize: 64,
  minSize: 32,
  maxSize: 1024,
  categories: ['caption'],
  pairs: true,
  generate(rng, size) {
    // the background as the shapes scenes draw it; the scene's own objects are replaced by one
    const scene = randomScene(rng, size);
    const o = oneObject(rng, size);
    scene.objects = [o];
    return { canvas: renderScene(scene), qas: [captionOf(o)] };
  },
  text(rng, size) {
    return [captionOf(oneObject(rng, size))];
  },
};
