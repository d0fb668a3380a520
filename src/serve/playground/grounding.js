// The boxes of a grounded answer, read in the page exactly as `vlmkit ask --json` reads them (src/data/loc.ts
// parseBoxes, src/eval/grounding.ts answerBoxes): a box is four <locNNNN> tokens (y_min, x_min, y_max, x_max, each
// a bin of 0..1023 over the image's height or width) and the text after them up to the next '<' or ';' is its
// label. The server sends the model's text as it is (as vLLM does for the same checkpoint), so reading the boxes
// is the page's job. No DOM here: test/serve/playground-grounding.test.ts checks it against the CLI's parser.

const LOC_BINS = 1024;
const LOC_RE = /<loc(\d{4})>/g;
const GROUP_RE = /((?:<loc\d{4}>){4})([^<;]*)/g;
const HAS_LOC = /<loc\d{4}>/;

/**
 * The boxes of `answer`, each {label, u0, v0, u1, v1} as fractions of the image's width (u) and height (v), and
 * {x0, y0, x1, y1} in the pixels of a width x height image, rounded to 0.01 px as the CLI prints them.
 */
export function answerBoxes(answer, width, height) {
  const r = (v) => Math.round(v * 100) / 100;
  const boxes = [];
  for (const m of answer.matchAll(GROUP_RE)) {
    const bins = [...m[1].matchAll(LOC_RE)].map((t) => Math.min(LOC_BINS - 1, Number(t[1])) / (LOC_BINS - 1));
    const [ya, xa, yb, xb] = bins;
    const u0 = Math.min(xa, xb), v0 = Math.min(ya, yb), u1 = Math.max(xa, xb), v1 = Math.max(ya, yb);
    boxes.push({ label: m[2].trim(), u0, v0, u1, v1, x0: r(u0 * width), y0: r(v0 * height), x1: r(u1 * width), y1: r(v1 * height) });
  }
  return boxes;
}

/** The answer without location tokens; one without any comes back trimmed and otherwise as it was. */
export function stripLocTokens(answer) {
  if (!HAS_LOC.test(answer)) return answer.trim();
  return answer.replace(/<loc\d{4}>/g, ' ').replace(/[ \t]{2,}/g, ' ').replace(/ +\n/g, '\n').replace(/\n +/g, '\n').trim();
}

/** The text to show while an answer streams in: stripped, with a trailing piece that may begin a token held back. */
export function streamingText(raw) {
  const cut = raw.lastIndexOf('<');
  const held = cut >= 0 && raw.length - cut < '<loc0000>'.length && /^<(l(o(c\d{0,4})?)?)?$/.test(raw.slice(cut));
  return stripLocTokens(held ? raw.slice(0, cut) : raw);
}
