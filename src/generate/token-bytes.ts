// The bytes each token id stands for. SmolVLM's tokenizer is a byte-level BPE (GPT-2's): a token's string spells
// its bytes with one printable character per byte (bytes_to_unicode), so a token may hold half of a multi-byte
// character, and its bytes are exact where its decoded text is not. Tokens whose string is not in that alphabet
// (a non-byte-level tokenizer) fall back to the UTF-8 of their decoded text. Special tokens have no bytes (null).
import type { Tokenizer } from '../processing/tokenizer.js';

/** GPT-2's bytes_to_unicode, inverted: character code -> byte. */
function unicodeToBytes(): Map<number, number> {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const m = new Map<number, number>();
  for (const b of printable) m.set(b, b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (printable.includes(b)) continue;
    m.set(256 + n++, b);
  }
  return m;
}

const BYTE_OF = unicodeToBytes();
const tables = new WeakMap<Tokenizer, (Uint8Array | null)[]>();

/** Every id's bytes up to `size` ids (ids past the tokenizer's vocabulary, padding of the logits, are null). */
export function tokenBytesTable(tok: Tokenizer, size: number): (Uint8Array | null)[] {
  const have = tables.get(tok);
  if (have && have.length >= size) return have;
  const enc = new TextEncoder();
  const out: (Uint8Array | null)[] = [];
  for (let id = 0; id < size; id++) {
    const s = id < tok.vocabSize ? tok.idToToken(id) : undefined;
    if (s === undefined || tok.isSpecialId(id)) {
      out.push(null);
      continue;
    }
    const bytes: number[] = [];
    for (const ch of s) {
      const b = BYTE_OF.get(ch.codePointAt(0)!);
      if (b === undefined) {
        bytes.length = 0;
        break;
      }
      bytes.push(b);
    }
    out.push(bytes.length ? Uint8Array.from(bytes) : enc.encode(tok.decode([id])));
  }
  tables.set(tok, out);
  return out;
}
