// Linear probes of a grounding model's decoder: how much of a box's coordinates its last layer carries, and where.
// For each grounding row ("Find the red star."), the decoder's last-layer state (after the final norm: what the
// lm_head reads) at four positions, and a ridge regression from those states to three targets, fit on the first
// --fit rows and scored (R²) on the rest. Written to find out why the built-in model's boxes start at the topmost
// object's top whatever was asked: a named object's y_min that no position carries cannot reach the answer.
//
//   npx tsx scripts/probe-grounding.ts --model DIR --data GROUNDING.jsonl [--rows 240] [--fit 170] [--json]
//
// Rows: the first --rows of a JSONL of grounding rows from a `vlmkit data shapes` folder (each with its "box", e.g.
// runs/builtin-data/shapes/test-grounding-400.jsonl), encoded as `vlmkit eval` encodes them. Each row's scene is
// regenerated from the dataset.json beside the file (seed, size; the split and index from the image's name, the
// stream imageRng of src/data/dataset.ts): the row's box must be exactly one of its
// objects and the image its pixels, or the probe stops (a dataset of another generator or seed cannot be probed).
// Positions:
//   name   the last token of the asked object's kind word in the question ("star")
//   color  the last token of its colour word ("red")
//   last   the last prompt position (the ":" of "Assistant:"); its greedy token is the answer's first, a space
//   ymin   the position after it (the prompt plus that greedy token): the one whose logits give the box's y_min
// Targets: the named object's y_min (target_y0) and x_min (target_x0), and the scene's topmost y_min (topmost_y0).
// Ridge: an unpenalised bias column, solved by Cholesky in float64. λ is picked from LAMBDAS on the fit rows alone
// (fit on their first 80%, scored on their last 20%), then refit on all fit rows; the test rows score only.
// Axis shares: where the picture enters the decoder, how loud each axis is. At the vision tower's output (the patch
// under the named object's box centre) and at the connector's output, which is the decoder's input (the image token
// under it), the share of the vectors' variance (summed over their dimensions, across rows) that is linear in the
// object's y_min and in its x_min, and the standard deviation of those parts. A coordinate that can be read from a
// vector (a high probe R²) can still be a small part of it, and a small part is lost among the rest once attention
// adds it to the residual stream: the built-in model's connector keeps x_min loud and y_min quiet although its tower
// holds both alike (and the decoder's layer-2 projections drop y again when it is made loud: recipes/builtin/README.md).
// First token on target: where the greedy y_min (the ymin position's <loc> token, as pixels) falls, within 4 px of
// the named object's top ("on target"), else of the topmost object's top ("on the topmost instead"), counted apart for
// pictures of one object and of several; for the latter beside what a uniform guess among the objects' tops would
// get (the sum of 1 / objects). A model that takes the shortcut matches that guess; one that reads the name beats it.
// Prints a table (position x target R², λ beside it), the axis shares and the first token's aim, or with --json one
// JSON object.
// VLMKIT_THREADS sets the engine's threads.
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadVlm, toSample } from '../src/api.js';
import { imageRng, SPLITS, type SplitName } from '../src/data/dataset.js';
import { LOC_BINS, type LabeledBox } from '../src/data/loc.js';
import { objectBox, randomScene, renderScene } from '../src/data/shapes.js';
import { linear, noGrad, tensor, tidy, type Tensor } from '../src/engine/index.js';
import { VlmkitError } from '../src/errors.js';
import { readEvalRows } from '../src/eval/rows.js';
import type { Idefics3Model } from '../src/models/idefics3/model.js';
import { loadImage } from '../src/processing/decode.js';

export const LAMBDAS = [0.1, 1, 10, 100, 1000] as const;
export const POSITIONS = ['name', 'color', 'last', 'ymin'] as const;
export const TARGETS = ['target_y0', 'target_x0', 'topmost_y0'] as const;
/** The share of the fit rows (their last) that λ is picked on. */
export const SELECT_SHARE = 0.2;

/** An error the input causes: printed as one line, without a stack. */
class ProbeError extends Error {}
const fail = (msg: string): never => {
  throw new ProbeError(msg);
};

// ---- ridge regression (plain float64)

/** Ridge weights for rows X (each of d features) and targets y: w (d) and an unpenalised bias b. */
export function ridgeFit(X: readonly ArrayLike<number>[], y: ArrayLike<number>, lambda: number): { w: Float64Array; b: number } {
  const n = X.length, d = X[0]!.length, m = d + 1; // the bias is column d
  const A = new Float64Array(m * m), v = new Float64Array(m);
  const row = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    const x = X[i]!;
    for (let j = 0; j < d; j++) row[j] = x[j]!;
    row[d] = 1;
    const yi = y[i]!;
    for (let j = 0; j < m; j++) {
      const r = row[j]!;
      if (r === 0) continue;
      v[j] += r * yi;
      for (let k = 0; k <= j; k++) A[j * m + k] += r * row[k]!;
    }
  }
  for (let j = 0; j < d; j++) A[j * m + j] += lambda;
  const sol = choleskySolve(A, v, m);
  return { w: sol.subarray(0, d), b: sol[d]! };
}

/** Solves A x = v for a symmetric positive-definite A (m x m, its lower triangle read), by Cholesky. */
function choleskySolve(A: Float64Array, v: Float64Array, m: number): Float64Array {
  const L = new Float64Array(m * m);
  for (let j = 0; j < m; j++) {
    let s = A[j * m + j]!;
    for (let k = 0; k < j; k++) s -= L[j * m + k]! ** 2;
    if (!(s > 0)) throw new Error(`ridge: the normal matrix is not positive definite at column ${j} (${s})`);
    const ljj = Math.sqrt(s);
    L[j * m + j] = ljj;
    for (let i = j + 1; i < m; i++) {
      let t = A[i * m + j]!;
      for (let k = 0; k < j; k++) t -= L[i * m + k]! * L[j * m + k]!;
      L[i * m + j] = t / ljj;
    }
  }
  const z = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let t = v[i]!;
    for (let k = 0; k < i; k++) t -= L[i * m + k]! * z[k]!;
    z[i] = t / L[i * m + i]!;
  }
  const x = new Float64Array(m);
  for (let i = m - 1; i >= 0; i--) {
    let t = z[i]!;
    for (let k = i + 1; k < m; k++) t -= L[k * m + i]! * x[k]!;
    x[i] = t / L[i * m + i]!;
  }
  return x;
}

/** R² of predictions p for targets y: 1 - SSE / the targets' own variance (0: no better than their mean). */
export function r2(y: ArrayLike<number>, p: ArrayLike<number>): number {
  let mean = 0;
  for (let i = 0; i < y.length; i++) mean += y[i]!;
  mean /= y.length;
  let sse = 0, sst = 0;
  for (let i = 0; i < y.length; i++) (sse += (y[i]! - p[i]!) ** 2), (sst += (y[i]! - mean) ** 2);
  return 1 - sse / sst;
}

function predict(X: readonly ArrayLike<number>[], { w, b }: { w: Float64Array; b: number }): Float64Array {
  return Float64Array.from(X, (x) => {
    let s = b;
    for (let j = 0; j < w.length; j++) s += w[j]! * x[j]!;
    return s;
  });
}

export interface ProbeScore {
  /** R² on the test rows (those after the first `fit`) */
  r2: number;
  /** the λ picked on the fit rows' last SELECT_SHARE */
  lambda: number;
  /** that λ's R² on those rows */
  select_r2: number;
}

/**
 * A ridge probe: fit on rows [0, fit), scored on [fit, n). λ is picked on the fit rows alone (fit on their first
 * 80%, R² on their last 20%), then the probe is refit on all fit rows with it; the test rows never choose anything.
 */
export function ridgeProbe(X: readonly ArrayLike<number>[], y: ArrayLike<number>, fit: number, lambdas: readonly number[] = LAMBDAS): ProbeScore {
  const n = X.length;
  const select = Math.max(2, Math.round(fit * SELECT_SHARE));
  if (fit - select < 2 || n - fit < 2) throw new Error(`ridgeProbe: ${n} rows, ${fit} to fit: need at least 4 fit rows and 2 test rows`);
  const yy = Array.from({ length: n }, (_, i) => y[i]!);
  const inner = fit - select;
  let best: { lambda: number; r2: number } | null = null;
  for (const lambda of lambdas) {
    const s = r2(yy.slice(inner, fit), predict(X.slice(inner, fit), ridgeFit(X.slice(0, inner), yy.slice(0, inner), lambda)));
    if (!best || s > best.r2) best = { lambda, r2: s };
  }
  const model = ridgeFit(X.slice(0, fit), yy.slice(0, fit), best!.lambda);
  return { r2: r2(yy.slice(fit), predict(X.slice(fit), model)), lambda: best!.lambda, select_r2: best!.r2 };
}

export interface AxisShare {
  /** the share of the vectors' total variance (summed over dimensions) that is linear in the target */
  share: number;
  /** the standard deviation of that part (the root of its variance summed over dimensions) */
  part_std: number;
  /** the standard deviation of the whole vectors, the same way */
  total_std: number;
}

/**
 * How much of vectors V (rows) is a linear function of the scalar target t: per dimension, the least-squares slope
 * on t gives the part of that dimension that t explains; the parts' variance summed over dimensions, over the
 * vectors' whole variance. Unlike a probe's R², this says how loud t is, not whether it can be read.
 */
export function axisShare(V: readonly ArrayLike<number>[], t: ArrayLike<number>): AxisShare {
  const n = V.length, d = V[0]!.length;
  if (n < 2 || t.length !== n) throw new Error(`axisShare: ${n} vectors and ${t.length} targets; need the same number, at least 2`);
  let tm = 0;
  for (let i = 0; i < n; i++) tm += t[i]!;
  tm /= n;
  let tt = 0;
  for (let i = 0; i < n; i++) tt += (t[i]! - tm) ** 2;
  if (!(tt > 0)) throw new Error('axisShare: the target does not vary');
  let total = 0, part = 0;
  for (let j = 0; j < d; j++) {
    let m = 0;
    for (let i = 0; i < n; i++) m += V[i]![j]!;
    m /= n;
    let vv = 0, vt = 0;
    for (let i = 0; i < n; i++) {
      const c = V[i]![j]! - m;
      vv += c * c;
      vt += c * (t[i]! - tm);
    }
    total += vv;
    part += (vt * vt) / tt; // the explained sum of squares of dimension j
  }
  return { share: total > 0 ? part / total : 0, part_std: Math.sqrt(part / n), total_std: Math.sqrt(total / n) };
}

// ---- the rows and their scenes


interface ProbeRow {
  line: number;
  image: string;
  question: string;
  prompt: Awaited<ReturnType<typeof readEvalRows>>['rows'][number]['prompt'];
  box: LabeledBox;
  topmostY0: number;
  /** how many objects the scene holds */
  objects: number;
}

/** The first `n` rows of `data`, each checked against its regenerated scene. */
async function readRows(data: string, n: number): Promise<{ rows: ProbeRow[]; size: number }> {
  if (!existsSync(data)) fail(`--data ${data} does not exist; give a JSONL of grounding rows from a \`vlmkit data shapes\` folder`);
  const info = join(dirname(data), 'dataset.json');
  if (!existsSync(info)) fail(`${data}: no dataset.json beside it; the scenes are regenerated from it, so give rows kept in their \`vlmkit data shapes\` folder`);
  const ds = JSON.parse(readFileSync(info, 'utf8')) as { generator?: string; seed?: number; size?: number };
  if (ds.generator !== 'shapes') fail(`${info}: generator is ${JSON.stringify(ds.generator)}, not "shapes"; the probe regenerates scenes of \`vlmkit data shapes\` only`);
  if (!Number.isInteger(ds.seed) || !Number.isInteger(ds.size)) fail(`${info} has no whole "seed" and "size"; remake the data with \`vlmkit data shapes\``);
  const seed = ds.seed!, size = ds.size!;

  const { rows } = await readEvalRows(data, { maxRows: n });
  if (rows.length < n) fail(`${data} has ${rows.length} rows, fewer than --rows ${n}; lower --rows (and --fit)`);
  const raw = readFileSync(data, 'utf8').split('\n');
  return {
    size,
    rows: await Promise.all(rows.map(async (row) => {
      const at = `${data}:${row.line}`;
      const box = (JSON.parse(raw[row.line - 1]!) as { box?: LabeledBox }).box;
      if (!box || typeof box.label !== 'string') fail(`${at}: no "box" with a "label"; give grounding rows only (category "grounding")`);
      if (row.images.length !== 1) fail(`${at}: ${row.images.length} images; a shapes grounding row has one`);
      const m = new RegExp(`^(${SPLITS.join('|')})-(\\d+)\\.png$`).exec(basename(row.images[0]!));
      if (!m) fail(`${at}: image ${basename(row.images[0]!)} is not named <split>-NNNNNN.png as \`vlmkit data shapes\` names its images`);
      const scene = randomScene(imageRng(seed, m![1] as SplitName, Number(m![2])), size);
      const objects = scene.objects.map(objectBox);
      const hits = objects.filter((o) => o.label === box!.label && o.x0 === box!.x0 && o.y0 === box!.y0 && o.x1 === box!.x1 && o.y1 === box!.y1).length;
      if (hits !== 1)
        fail(`${at}: the row's box ${JSON.stringify(box)} is ${hits} of the objects regenerated from ${info} (seed ${seed}, size ${size}), not exactly one; are these rows from that dataset, made by this version of vlmkit?`);
      const image = await loadImage(row.images[0]!);
      const pixels = renderScene(scene).data;
      if (image.width !== size || image.height !== size || Buffer.compare(Buffer.from(pixels), Buffer.from(image.data)) !== 0)
        fail(`${at}: ${row.images[0]} differs from the scene regenerated from ${info}; are these rows from that dataset, made by this version of vlmkit?`);
      const last = row.prompt.at(-1)!;
      const question = typeof last.content === 'string' ? last.content : last.content.map((p) => (p.type === 'text' ? p.text : '')).join('');
      return { line: row.line, image: row.images[0]!, question, prompt: row.prompt, box: box!, topmostY0: Math.min(...objects.map((o) => o.y0)), objects: objects.length };
    })),
  };
}

// ---- the states

interface States {
  /** per position, a row's state (hidden size) */
  states: Record<(typeof POSITIONS)[number], Float32Array[]>;
  hiddenSize: number;
  /** how often each greedy first answer token came */
  firstTokens: Record<string, number>;
  /** per row, the ymin position's greedy token's bin (null when it is not a <locNNNN>) */
  yminBins: (number | null)[];
  /** per row, the vision tower's output at the patch under the named object's box centre */
  tower: Float32Array[];
  /** per row, the connector's output (the decoder's input) at the image token under it */
  input: Float32Array[];
}

async function probeStates(modelDir: string, rows: readonly ProbeRow[], size: number): Promise<States> {
  const vlm = await loadVlm(modelDir);
  try {
    const model = vlm.model as unknown as Idefics3Model;
    if (typeof model.hiddenAt !== 'function') fail(`--model ${modelDir} is a ${vlm.family} model; the probe reads Idefics3 / SmolVLM decoders (hiddenAt)`);
    const tok = vlm.tokenizer;
    const eou = tok.specialIds.endOfUtterance ?? fail(`--model ${modelDir}: its tokenizer has no <end_of_utterance>, so the question cannot be found in the prompt`);
    const H = model.config.text.hiddenSize;
    const out: States = { states: { name: [], color: [], last: [], ymin: [] }, hiddenSize: H, firstTokens: {}, yminBins: [], tower: [], input: [] };
    const argmax = (a: Float32Array, from = 0, to = a.length) => {
      let k = from;
      for (let v = from + 1; v < to; v++) if (a[v]! > a[k]!) k = v;
      return k - from;
    };
    for (const [r, row] of rows.entries()) {
      const at = `line ${row.line}`;
      const image = await loadImage(row.image); // as runEval decodes it
      const enc = await vlm.processor.encodeBatch([toSample(row.prompt, { images: [image] })], { padding: 'left' });
      try {
        const ids = enc.ids[0]!;
        const T = enc.seqLen;
        // the question's tokens: after the image's last special token, up to <end_of_utterance>
        const e = ids.lastIndexOf(eou);
        let s = e - 1;
        while (s >= 0 && !tok.isSpecialId(ids[s]!)) s--;
        const span = ids.slice(s + 1, e);
        if (tok.decode(span) !== row.question) fail(`${at}: the question's tokens decode to ${JSON.stringify(tok.decode(span))}, not ${JSON.stringify(row.question)}`);
        const ends = span.map((_, k) => tok.decode(span.slice(0, k + 1)).length); // where each token's prefix ends
        const label = row.box.label;
        const from = row.question.indexOf(` ${label}`);
        if (from < 0 || row.question.indexOf(` ${label}`, from + 1) >= 0) fail(`${at}: "${label}" is not once in the question ${JSON.stringify(row.question)}`);
        const color = label.split(' ')[0]!;
        const tokenEnding = (end: number, word: string) => {
          const k = ends.indexOf(end);
          if (k < 0) fail(`${at}: no token of ${JSON.stringify(row.question)} ends right after "${word}"`);
          return s + 1 + k;
        };
        const colorPos = tokenEnding(from + 1 + color.length, color);
        const namePos = tokenEnding(from + 1 + label.length, label);

        // pass 1, the prompt: its greedy first answer token. Pass 2, the prompt and that token: the states (causal
        // attention leaves positions < T as in pass 1), and the logits at T - 1 and T to check and to count.
        const base = { inputIds: enc.inputIds, attentionMask: enc.attentionMask, pixelValues: enc.pixelValues ?? null, pixelAttentionMask: enc.pixelAttentionMask ?? null };
        const first = argmax(noGrad(() => tidy(() => {
          const h = model.hiddenAt(base, [T - 1]);
          return linear(h.hidden, h.head).toFloat32Array();
        })));
        if (r === 0) {
          // the first row through vlm.generateBatch, as `vlmkit eval` runs it: it must begin with the same token
          const g = (await vlm.generateBatch([{ prompt: row.prompt, images: [image] }], { maxNewTokens: 1, doSample: false }))[0]!;
          if (g.tokenIds[0] !== first) throw new Error(`${at}: vlm.generateBatch begins with token ${g.tokenIds[0]}, the forward here with ${first}`);
        }
        const positions = [namePos, colorPos, T - 1, T];
        const got = noGrad(() => tidy(() => {
          const inputs = { ...base, inputIds: tensor([...ids, first], [1, T + 1], { dtype: 'i32' }), attentionMask: tensor(new Array(T + 1).fill(1), [1, T + 1], { dtype: 'i32' }) };
          const h = model.hiddenAt(inputs, positions);
          return { hidden: h.hidden.toFloat32Array(), logits: linear(h.hidden, h.head).toFloat32Array() };
        }));
        const V = got.logits.length / positions.length;
        if (argmax(got.logits, 2 * V, 3 * V) !== first) throw new Error(`${at}: pass 2 disagrees with pass 1 on the first answer token`);
        const ymin = tok.idToToken(argmax(got.logits, 3 * V, 4 * V)) ?? '';
        const loc = /^<loc(\d{4})>$/.exec(ymin);
        out.yminBins.push(loc ? Number(loc[1]) : null);
        const firstTok = tok.idToToken(first) ?? `#${first}`;
        out.firstTokens[firstTok] = (out.firstTokens[firstTok] ?? 0) + 1;
        POSITIONS.forEach((p, j) => out.states[p].push(got.hidden.slice(j * H, (j + 1) * H)));
        const axes = centreVectors(model, enc.pixelValues, enc.pixelAttentionMask ?? null, row.box, size, at);
        out.tower.push(axes.tower);
        out.input.push(axes.input);
      } finally {
        enc.dispose();
      }
    }
    return out;
  } finally {
    vlm.dispose();
  }
}

/**
 * The tower's output at the patch under the box's centre and the connector's at the image token under it, for a
 * picture that is one tile (the built-in model's: no splitting at its size); anything else stops the probe.
 */
function centreVectors(model: Idefics3Model, pixels: Tensor | null | undefined, mask: Tensor | null, box: LabeledBox, size: number, at: string): { tower: Float32Array; input: Float32Array } {
  if (!pixels) fail(`${at}: the processor gave no pixels`);
  return noGrad(() => tidy(() => {
    const vh = model.visionHiddenStates(pixels!, mask);
    const [tiles, P, Dv] = vh.shape as [number, number, number];
    const g = Math.round(Math.sqrt(P)), s = model.config.scaleFactor, gs = g / s;
    if (tiles !== 1 || g * g !== P || !Number.isInteger(gs)) fail(`${at}: the picture became ${tiles} tiles of ${P} patches; the axis shares read pictures of one square tile`);
    const feats = model.connector.forward(vh);
    const D = feats.shape[2]!;
    const cell = (v: number, n: number) => Math.min(n - 1, Math.floor((v / size) * n));
    const cy = (box.y0 + box.y1) / 2, cx = (box.x0 + box.x1) / 2;
    const p = cell(cy, g) * g + cell(cx, g), q = cell(cy, gs) * gs + cell(cx, gs);
    return { tower: vh.toFloat32Array().slice(p * Dv, (p + 1) * Dv), input: feats.toFloat32Array().slice(q * D, (q + 1) * D) };
  }));
}

// ---- where the box's first token lands

/** Within this many pixels of an object's top, the first token is on it. */
export const ON_TARGET_PX = 4;

export interface FirstTokenAim {
  /** rows of pictures with one object / several */
  one: number;
  several: number;
  /** the greedy y_min within ON_TARGET_PX of the named object's top: in one-object pictures, in the others */
  on_target_one: number;
  on_target_several: number;
  /** in pictures of several objects, not on the named object's top but on the topmost object's */
  on_topmost_instead: number;
  /** in pictures of several objects, what a uniform guess among the objects' tops would put on target */
  uniform_guess_several: number;
}

/** Counts where each row's greedy y_min (a bin, or null) falls; `size` is the side the boxes are measured in. */
export function firstTokenAim(rows: readonly { box: { y0: number }; topmostY0: number; objects: number }[], bins: readonly (number | null)[], size: number): FirstTokenAim {
  const aim: FirstTokenAim = { one: 0, several: 0, on_target_one: 0, on_target_several: 0, on_topmost_instead: 0, uniform_guess_several: 0 };
  rows.forEach((r, i) => {
    const bin = bins[i];
    const y = bin == null ? NaN : (bin / (LOC_BINS - 1)) * size; // a <loc> bin back to pixels, as parseBoxes reads it
    const on = Math.abs(y - r.box.y0) <= ON_TARGET_PX;
    if (r.objects <= 1) {
      aim.one++;
      if (on) aim.on_target_one++;
      return;
    }
    aim.several++;
    aim.uniform_guess_several += 1 / r.objects;
    if (on) aim.on_target_several++;
    else if (Math.abs(y - r.topmostY0) <= ON_TARGET_PX) aim.on_topmost_instead++;
  });
  aim.uniform_guess_several = Math.round(aim.uniform_guess_several * 10) / 10;
  return aim;
}

// ---- the command

const pct = (a: AxisShare) => `${(100 * a.share).toFixed(1)}% (${a.part_std.toFixed(1)})`;

const USAGE = 'usage: npx tsx scripts/probe-grounding.ts --model DIR --data GROUNDING.jsonl [--rows 240] [--fit 170] [--json]';

async function main(argv: string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { model: { type: 'string' }, data: { type: 'string' }, rows: { type: 'string', default: '240' }, fit: { type: 'string', default: '170' }, json: { type: 'boolean', default: false } } }));
  } catch (e) {
    return fail(`${(e as Error).message}; ${USAGE}`);
  }
  if (!values.model || !values.data) fail(USAGE);
  const n = Number(values.rows), fit = Number(values.fit);
  const select = Math.max(2, Math.round(fit * SELECT_SHARE));
  if (!Number.isInteger(n) || !Number.isInteger(fit) || fit - select < 2 || n - fit < 2)
    fail(`--rows ${values.rows} --fit ${values.fit}: need whole numbers with --fit >= 4 and at least 2 rows after it (e.g. --rows 240 --fit 170)`);
  const t0 = performance.now();
  const { rows, size } = await readRows(values.data!, n);
  const st = await probeStates(values.model!, rows, size);
  const targets: Record<(typeof TARGETS)[number], number[]> = {
    target_y0: rows.map((r) => r.box.y0),
    target_x0: rows.map((r) => r.box.x0),
    topmost_y0: rows.map((r) => r.topmostY0),
  };
  const probes = Object.fromEntries(POSITIONS.map((p) => [p, Object.fromEntries(TARGETS.map((t) => [t, ridgeProbe(st.states[p], targets[t], fit)]))])) as
    Record<(typeof POSITIONS)[number], Record<(typeof TARGETS)[number], ProbeScore>>;
  const axes = Object.fromEntries((['tower', 'input'] as const).map((w) => [w, { y0: axisShare(st[w], targets.target_y0), x0: axisShare(st[w], targets.target_x0) }]));
  const aim = firstTokenAim(rows, st.yminBins, size);
  const yminLocRows = st.yminBins.filter((b) => b !== null).length;
  const report = {
    model: values.model, data: values.data, rows: n, fit, test: n - fit, select_rows: select, lambdas: LAMBDAS, hidden_size: st.hiddenSize,
    scenes_checked: rows.length, first_tokens: st.firstTokens, ymin_loc_rows: yminLocRows, probes, axis_shares: axes, first_token_aim: aim,
    seconds: Math.round((performance.now() - t0) / 100) / 10,
  };
  if (values.json) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return;
  }
  const lines = [
    `${values.model} on ${values.data}: ${n} rows (every box matched its regenerated scene); ridge on the last-layer state, fit on ${fit}, R² on ${n - fit}; λ picked on the fit rows' last ${select}`,
    `first answer token ${JSON.stringify(st.firstTokens)}; the ymin position's greedy token is a <loc> in ${yminLocRows} of ${n} rows`,
    ['position', ...TARGETS].map((s) => s.padEnd(18)).join('').trimEnd(),
    ...POSITIONS.map((p) => [p, ...TARGETS.map((t) => `${probes[p][t].r2.toFixed(2)} (λ ${probes[p][t].lambda})`)].map((s) => s.padEnd(18)).join('').trimEnd()),
    'axis shares at the named object\'s box centre: the part of the variance linear in its y_min / x_min (std of that part, of the whole)',
    ...(['tower', 'input'] as const).map((w) => `  ${w === 'tower' ? 'vision tower output' : 'decoder input (connector)'}: y_min ${pct(axes[w]!.y0)}, x_min ${pct(axes[w]!.x0)} (whole ${axes[w]!.y0.total_std.toFixed(1)})`),
    `the box's first token within ${ON_TARGET_PX} px of the named object's top: ${aim.on_target_one} of ${aim.one} one-object pictures; ${aim.on_target_several} of ${aim.several} with several objects (a uniform guess among their tops: ${aim.uniform_guess_several}; on the topmost object's top instead: ${aim.on_topmost_instead})`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    await main(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof ProbeError || e instanceof VlmkitError)) throw e;
    process.stderr.write(`probe-grounding: ${e.message}\n`);
    process.exitCode = 1;
  }
}
