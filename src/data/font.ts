// A 5x7 bitmap font of our own for chart text: capital letters, digits and a few symbols, drawn as whole pixels
// scaled by an integer (crisp at any scale, identical everywhere). Text is upper-cased before drawing, so
// generators write labels in capitals to keep what is drawn and what is asked about the same.
import type { Canvas, Rgb } from './raster.js';

const GLYPH_W = 5;
const GLYPH_H = 7;

// Each glyph: 7 rows of 5 columns, '#' = ink.
const GLYPHS: Record<string, string> = {
  A: '.###. #...# #...# ##### #...# #...# #...#',
  B: '####. #...# #...# ####. #...# #...# ####.',
  C: '.###. #...# #.... #.... #.... #...# .###.',
  D: '####. #...# #...# #...# #...# #...# ####.',
  E: '##### #.... #.... ####. #.... #.... #####',
  F: '##### #.... #.... ####. #.... #.... #....',
  G: '.###. #...# #.... #.### #...# #...# .####',
  H: '#...# #...# #...# ##### #...# #...# #...#',
  I: '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  J: '..### ...#. ...#. ...#. ...#. #..#. .##..',
  K: '#...# #..#. #.#.. ##... #.#.. #..#. #...#',
  L: '#.... #.... #.... #.... #.... #.... #####',
  M: '#...# ##.## #.#.# #.#.# #...# #...# #...#',
  N: '#...# #...# ##..# #.#.# #..## #...# #...#',
  O: '.###. #...# #...# #...# #...# #...# .###.',
  P: '####. #...# #...# ####. #.... #.... #....',
  Q: '.###. #...# #...# #...# #.#.# #..#. .##.#',
  R: '####. #...# #...# ####. #.#.. #..#. #...#',
  S: '.#### #.... #.... .###. ....# ....# ####.',
  T: '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  U: '#...# #...# #...# #...# #...# #...# .###.',
  V: '#...# #...# #...# #...# #...# .#.#. ..#..',
  W: '#...# #...# #...# #.#.# #.#.# #.#.# .#.#.',
  X: '#...# #...# .#.#. ..#.. .#.#. #...# #...#',
  Y: '#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..',
  Z: '##### ....# ...#. ..#.. .#... #.... #####',
  '0': '.###. #...# #..## #.#.# ##..# #...# .###.',
  '1': '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.',
  '2': '.###. #...# ....# ...#. ..#.. .#... #####',
  '3': '####. ....# ....# .###. ....# ....# ####.',
  '4': '...#. ..##. .#.#. #..#. ##### ...#. ...#.',
  '5': '##### #.... ####. ....# ....# #...# .###.',
  '6': '..##. .#... #.... ####. #...# #...# .###.',
  '7': '##### ....# ...#. ..#.. .#... .#... .#...',
  '8': '.###. #...# #...# .###. #...# #...# .###.',
  '9': '.###. #...# #...# .#### ....# ...#. .##..',
  ' ': '..... ..... ..... ..... ..... ..... .....',
  '.': '..... ..... ..... ..... ..... .##.. .##..',
  ',': '..... ..... ..... ..... .##.. ..#.. .#...',
  ':': '..... .##.. .##.. ..... .##.. .##.. .....',
  '%': '##..# ##.#. ...#. ..#.. .#... .#.## #..##',
  '-': '..... ..... ..... ##### ..... ..... .....',
  '+': '..... ..#.. ..#.. ##### ..#.. ..#.. .....',
  '?': '.###. #...# ....# ...#. ..#.. ..... ..#..',
  '!': '..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..',
  "'": '..#.. ..#.. .#... ..... ..... ..... .....',
  '(': '...#. ..#.. .#... .#... .#... ..#.. ...#.',
  ')': '.#... ..#.. ...#. ...#. ...#. ..#.. .#...',
  '/': '....# ....# ...#. ..#.. .#... #.... #....',
  $: '..#.. .#### #.#.. .###. ..#.# ####. ..#..',
  '#': '.#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.',
  '&': '.##.. #..#. #.#.. .#... #.#.# #..#. .##.#',
};

const BITMAPS = new Map<string, boolean[]>(
  Object.entries(GLYPHS).map(([ch, rows]) => {
    const bits = rows.replace(/ /g, '').split('').map((c) => c === '#');
    if (bits.length !== GLYPH_W * GLYPH_H) throw new Error(`font: glyph ${JSON.stringify(ch)} is not 5x7`);
    return [ch, bits];
  }),
);

/** The characters the font can draw (after upper-casing). */
export const FONT_CHARS = [...BITMAPS.keys()].join('');

export function canDraw(text: string): boolean {
  for (const ch of text.toUpperCase()) if (!BITMAPS.has(ch)) return false;
  return true;
}

/** Width in pixels of `text` at `scale` (one column of space between glyphs). */
export function textWidth(text: string, scale: number): number {
  return text.length === 0 ? 0 : (text.length * (GLYPH_W + 1) - 1) * scale;
}

export function textHeight(scale: number): number {
  return GLYPH_H * scale;
}

/** Draws `text` with its top-left corner at (x, y). A character the font lacks is an error (a generator bug). */
export function drawText(canvas: Canvas, text: string, x: number, y: number, scale: number, c: Rgb): void {
  let cx = Math.round(x);
  const cy = Math.round(y);
  for (const ch of text.toUpperCase()) {
    const bits = BITMAPS.get(ch);
    if (!bits) throw new Error(`font: no glyph for ${JSON.stringify(ch)}`);
    for (let r = 0; r < GLYPH_H; r++)
      for (let col = 0; col < GLYPH_W; col++) if (bits[r * GLYPH_W + col]) canvas.block(cx + col * scale, cy + r * scale, scale, scale, c);
    cx += (GLYPH_W + 1) * scale;
  }
}

/** Draws `text` centred on x. */
export function drawTextCentered(canvas: Canvas, text: string, x: number, y: number, scale: number, c: Rgb): void {
  drawText(canvas, text, x - textWidth(text, scale) / 2, y, scale, c);
}
