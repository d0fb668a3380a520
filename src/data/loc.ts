// Location tokens for grounding, as PaliGemma writes them: <loc0000>..<loc1023>; a box is four tokens y_min,
// x_min, y_max, x_max, each round(coordinate / size * 1023) of the image, followed by its label. Several boxes are
// joined with " ; ". Coordinates are relative, so they hold for the image as the processor resized it (Idefics3
// keeps the aspect ratio) and map back to the original image's pixels.

export const LOC_BINS = 1024;

export function locToken(bin: number): string {
  if (!Number.isInteger(bin) || bin < 0 || bin >= LOC_BINS) throw new RangeError(`location bin ${bin} is outside 0..${LOC_BINS - 1}`);
  return `<loc${String(bin).padStart(4, '0')}>`;
}

/** A regex source matching exactly the location tokens <loc0000>..<loc1023>. */
export const LOC_PATTERN = '<loc(?:0\\d{3}|10[01]\\d|102[0-3])>';

/** Every location token, in id order. */
export function allLocTokens(): string[] {
  return Array.from({ length: LOC_BINS }, (_, i) => locToken(i));
}

/** A box in image pixels: x0 <= x1, y0 <= y1 (continuous coordinates, 0..width / 0..height). */
export interface PixelBox {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export interface LabeledBox extends PixelBox {
  label: string;
}

function toBin(v: number, size: number): number {
  const t = Math.min(1, Math.max(0, v / size));
  return Math.round(t * (LOC_BINS - 1));
}

function checkSize(width: number, height: number): void {
  if (!(width > 0 && height > 0 && Number.isFinite(width) && Number.isFinite(height)))
    throw new RangeError(`image size must be positive, got ${width}x${height}`);
}

/** The four tokens of a box (y_min, x_min, y_max, x_max). */
export function boxToLocTokens(box: PixelBox, width: number, height: number): string {
  checkSize(width, height);
  for (const k of ['x0', 'y0', 'x1', 'y1'] as const) if (!Number.isFinite(box[k])) throw new RangeError(`box.${k} is not a number: ${box[k]}`);
  return (
    locToken(toBin(Math.min(box.y0, box.y1), height)) +
    locToken(toBin(Math.min(box.x0, box.x1), width)) +
    locToken(toBin(Math.max(box.y0, box.y1), height)) +
    locToken(toBin(Math.max(box.x0, box.x1), width))
  );
}

/** Boxes as an answer: "<loc..>x4 label ; <loc..>x4 label". */
export function encodeBoxes(boxes: readonly LabeledBox[], width: number, height: number): string {
  return boxes.map((b) => `${boxToLocTokens(b, width, height)} ${b.label.trim()}`.trimEnd()).join(' ; ');
}

export interface ParsedLocations {
  /** the answer with every location token removed (and the spaces around them tidied) */
  text: string;
  /** each complete group of four tokens, in the original image's pixels, with the text that follows it */
  boxes: LabeledBox[];
}

const LOC_RE = /<loc(\d{4})>/g;
const GROUP_RE = /((?:<loc\d{4}>){4})([^<;]*)/g;

/**
 * Reads the boxes out of a generated answer. Groups with fewer than four tokens (a cut-off answer) give no box;
 * their tokens are still removed from `text`. Bins past 1023 are clamped.
 */
export function parseBoxes(answer: string, width: number, height: number): ParsedLocations {
  checkSize(width, height);
  const boxes: LabeledBox[] = [];
  for (const m of answer.matchAll(GROUP_RE)) {
    const bins = [...m[1]!.matchAll(LOC_RE)].map((t) => Math.min(LOC_BINS - 1, Number(t[1])) / (LOC_BINS - 1));
    const [ya, xa, yb, xb] = bins as [number, number, number, number];
    boxes.push({
      label: m[2]!.trim(),
      x0: Math.min(xa, xb) * width,
      y0: Math.min(ya, yb) * height,
      x1: Math.max(xa, xb) * width,
      y1: Math.max(ya, yb) * height,
    });
  }
  const text = answer.replace(LOC_RE, ' ').replace(/\s+/g, ' ').trim();
  return { text, boxes };
}
