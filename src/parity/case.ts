// Reading a reference case: cases/NAME.safetensors (the tensors transformers computed) and cases/NAME.json (the
// text inputs: prompt(s), image file names, flags). Also turns a case's rendered prompt back into a conversation,
// so that our own chat template can be checked against it.
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FileFormatError, VlmkitError } from '../errors.js';
import { SafetensorsFile } from '../io/safetensors.js';
import type { ChatMessage, ContentPart } from '../processing/chat-template.js';
import { IMAGE_TOKEN } from '../processing/tokenizer.js';

export type Json = Record<string, unknown>;

export interface IntTensor {
  shape: number[];
  values: number[];
}

export interface FloatTensor {
  shape: number[];
  data: Float32Array;
}

export class ParityCase {
  readonly name: string;
  readonly path: string;
  readonly meta: Json;
  private readonly file: SafetensorsFile;

  private constructor(path: string, meta: Json, file: SafetensorsFile) {
    this.path = path;
    this.name = basename(path).replace(/\.safetensors$/, '');
    this.meta = meta;
    this.file = file;
  }

  /** Opens NAME.safetensors and the NAME.json beside it. */
  static open(path: string): ParityCase {
    if (!path.endsWith('.safetensors')) throw new VlmkitError('E_ARGS', `${path}: give the case's .safetensors file (its .json must sit beside it)`);
    if (!existsSync(path)) throw new VlmkitError('E_FILE', `case ${path} does not exist; check the path`);
    const jsonPath = path.replace(/\.safetensors$/, '.json');
    let meta: Json = {};
    if (existsSync(jsonPath)) {
      try {
        meta = JSON.parse(readFileSync(jsonPath, 'utf8')) as Json;
      } catch (e) {
        throw new FileFormatError(`${jsonPath} is not valid JSON (${(e as Error).message})`);
      }
    } else {
      throw new FileFormatError(`${jsonPath} is missing; every case needs the .json with its text inputs next to its .safetensors`);
    }
    return new ParityCase(path, meta, SafetensorsFile.open(path));
  }

  /** The default images folder: `images` next to the cases folder. */
  get defaultImagesDir(): string {
    return join(dirname(dirname(this.path)), 'images');
  }

  has(name: string): boolean {
    return this.file.has(name);
  }

  names(): string[] {
    return this.file.names();
  }

  ints(name: string): IntTensor {
    const t = this.file.read(name);
    const d = t.data;
    const values = d instanceof BigInt64Array ? Array.from(d, Number) : Array.from(d as ArrayLike<number>, Number);
    return { shape: t.shape, values };
  }

  floats(name: string): FloatTensor {
    const t = this.file.read(name);
    if (t.dtype !== 'F32') throw new FileFormatError(`${this.path}: tensor ${name} is ${t.dtype}, expected F32`);
    return { shape: t.shape, data: t.data as Float32Array };
  }

  close(): void {
    this.file.close();
  }
}

/** A sample of a case: its rendered prompt and image file names. */
export interface CaseSample {
  prompt: string;
  images: string[];
}

/**
 * The samples a case describes (`prompt` or `text` + `image`; `prompts` or `texts` (whole training conversations)
 * + `images`, one entry per sample), or null when it has none.
 */
export function caseSamples(meta: Json): CaseSample[] | null {
  // `prompt` (generation cases) or `text` (a whole training conversation)
  const one = typeof meta.prompt === 'string' ? meta.prompt : typeof meta.text === 'string' ? meta.text : null;
  if (one !== null) {
    const img = meta.image;
    const images = typeof img === 'string' ? [img] : Array.isArray(img) ? img.filter((x): x is string => typeof x === 'string') : [];
    return [{ prompt: one, images }];
  }
  const list = Array.isArray(meta.prompts) ? meta.prompts : Array.isArray(meta.texts) ? meta.texts : null;
  if (list && list.every((p) => typeof p === 'string')) {
    const imgs = Array.isArray(meta.images) ? meta.images : [];
    return (list as string[]).map((prompt, i) => {
      const im = imgs[i];
      return { prompt, images: Array.isArray(im) ? im.filter((x): x is string => typeof x === 'string') : typeof im === 'string' ? [im] : [] };
    });
  }
  return null;
}

/**
 * The shape of an .npy file (NumPy's format: magic, version, a little header dict), read from its header alone.
 * Only what the video case needs: C order, any dtype.
 */
export function npyShape(path: string): number[] {
  return readNpyHeader(path).shape;
}

/** An .npy file of uint8 (`|u1`), C order: its shape and values (the video case's frames). */
export function readNpyU8(path: string): { shape: number[]; data: Uint8Array } {
  const { shape, dataStart, descr } = readNpyHeader(path);
  if (descr !== '|u1') throw new FileFormatError(`${path}: .npy dtype ${descr} is not uint8 ('|u1'); the frames must be uint8 RGB`);
  const n = shape.reduce((a, b) => a * b, 1);
  const buf = readFileSync(path);
  if (buf.length - dataStart !== n) throw new FileFormatError(`${path}: holds ${buf.length - dataStart} bytes of data, its shape [${shape.join(', ')}] needs ${n}`);
  return { shape, data: new Uint8Array(buf.buffer, buf.byteOffset + dataStart, n) };
}

function readNpyHeader(path: string): { shape: number[]; dataStart: number; descr: string } {
  if (!existsSync(path)) throw new VlmkitError('E_FILE', `${path} does not exist; pass --images <dir> with the case's frames`);
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(12);
    const n = readSync(fd, head, 0, 12, 0);
    if (n < 10 || head.toString('latin1', 0, 6) !== '\x93NUMPY') throw new FileFormatError(`${path} is not an .npy file (no \\x93NUMPY magic)`);
    const major = head[6]!;
    const len = major === 1 ? head.readUInt16LE(8) : head.readUInt32LE(8);
    const start = major === 1 ? 10 : 12;
    // a real header is a few hundred bytes; a huge length is a corrupt file, not something to allocate
    if (len > 65536) throw new FileFormatError(`${path}: .npy header of ${len} bytes is corrupt`);
    const buf = Buffer.alloc(len);
    if (readSync(fd, buf, 0, len, start) !== len) throw new FileFormatError(`${path}: .npy header is truncated`);
    const header = buf.toString('latin1');
    const m = /'shape':\s*\(([^)]*)\)/.exec(header);
    if (!m || /'fortran_order':\s*True/.test(header)) throw new FileFormatError(`${path}: .npy header ${JSON.stringify(header.trim())} has no C-order shape`);
    const descr = /'descr':\s*'([^']*)'/.exec(header)?.[1] ?? '';
    return { shape: m[1]!.split(',').map((x) => x.trim()).filter((x) => x !== '').map(Number), dataStart: start + len, descr };
  } finally {
    closeSync(fd);
  }
}

const TURN = /([A-Za-z]+):(.*?)<end_of_utterance>\n/sy;

/**
 * Parses a prompt in the SmolVLM / Idefics3 chat format ("<|im_start|>User:<image>Question<end_of_utterance>\n
 * Assistant:") back into messages, so that rendering them with our template can be compared to the prompt.
 * Returns null for prompts in another format.
 */
export function parseSmolVlmPrompt(prompt: string): { messages: ChatMessage[]; addGenerationPrompt: boolean } | null {
  const START = '<|im_start|>';
  if (!prompt.startsWith(START)) return null;
  let at = START.length;
  const messages: ChatMessage[] = [];
  TURN.lastIndex = at;
  for (let m = TURN.exec(prompt); m; m = TURN.exec(prompt)) {
    const role = m[1]!.toLowerCase();
    let body = m[2]!;
    const content: ContentPart[] = [];
    if (!body.startsWith(IMAGE_TOKEN) && !body.startsWith('<video>')) {
      if (!body.startsWith(' ')) return null;
      body = body.slice(1);
    }
    for (const piece of body.split(/(<image>|<video>)/)) {
      if (piece === IMAGE_TOKEN) content.push({ type: 'image' });
      else if (piece === '<video>') content.push({ type: 'video' });
      else if (piece) content.push({ type: 'text', text: piece });
    }
    if (content.length === 0) content.push({ type: 'text', text: '' });
    messages.push({ role, content });
    at = TURN.lastIndex;
  }
  const rest = prompt.slice(at);
  if (rest !== '' && rest !== 'Assistant:') return null;
  if (messages.length === 0) return null;
  return { messages, addGenerationPrompt: rest === 'Assistant:' };
}
