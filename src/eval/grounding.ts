// Boxes in a generated answer, in the original image's pixels.
//
// Why relative coordinates map straight back: the Idefics3 processor (src/processing/image.ts) never crops or
// pads an image. It resizes the longest edge (the short edge rounded to even), then stretches the whole image to
// whole tiles (both edges up to multiples of the tile side), cuts those into tiles and adds the whole image
// squashed to one tile; without splitting it squashes the whole image to one tile. Every step maps the full
// frame onto the full frame, so a point at (u, v) of the width/height in any of those views is at (u, v) of the
// decoded original (EXIF orientation applied, as the processor sees it): x = u * width, y = v * height.
import { parseBoxes, type LabeledBox } from '../data/loc.js';

export interface AnswerBoxes {
  /** the answer without its location tokens */
  text: string;
  boxes: LabeledBox[];
}

/** The answer's text and boxes for an image of width x height pixels (coordinates rounded to 0.01 px). */
export function answerBoxes(answer: string, width: number, height: number): AnswerBoxes {
  const { boxes } = parseBoxes(answer, width, height);
  const r = (v: number) => Math.round(v * 100) / 100;
  return { text: stripLocTokens(answer), boxes: boxes.map((b) => ({ label: b.label, x0: r(b.x0), y0: r(b.y0), x1: r(b.x1), y1: r(b.y1) })) };
}

// any four digits, as parseBoxes reads them (bins past 1023 are clamped there, so they are tokens here too)
const LOC_RE = /<loc\d{4}>/g;
const HAS_LOC = /<loc\d{4}>/;

/** The answer without location tokens; an answer without any comes back trimmed and otherwise as it was. */
export function stripLocTokens(answer: string): string {
  if (!HAS_LOC.test(answer)) return answer.trim();
  return answer.replace(LOC_RE, ' ').replace(/[ \t]{2,}/g, ' ').replace(/ +\n/g, '\n').replace(/\n +/g, '\n').trim();
}
const TOKEN_LEN = '<loc0000>'.length;

/**
 * Removes location tokens from streamed text pieces, holding back a piece's tail that may be the start of a
 * token cut across pieces. Call with no argument at the end for what is still held.
 */
export function locStripper(): (piece?: string) => string {
  let held = '';
  return (piece) => {
    if (piece === undefined) {
      const rest = held.replace(LOC_RE, '');
      held = '';
      return rest;
    }
    const s = (held + piece).replace(LOC_RE, '');
    const cut = s.lastIndexOf('<');
    // a '<' within a token's length of the end may begin one: keep it for the next piece
    if (cut >= 0 && s.length - cut < TOKEN_LEN && /^<(l(o(c\d{0,4})?)?)?$/.test(s.slice(cut))) {
      held = s.slice(cut);
      return s.slice(0, cut);
    }
    held = '';
    return s;
  };
}
