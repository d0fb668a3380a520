// A small deterministic byte-level BPE trainer: GPT-2's byte-to-character table, the pre-tokenization that the
// built tokenizer.json applies (added tokens split out, digits one by one, then the GPT-2 regex), and merges
// learned greedily by pair frequency (ties go to the smaller pair in string order, so the result depends only on
// the corpus).

/** GPT-2's reversible map from bytes to printable characters (what ByteLevel pre-tokenizers emit). */
export function bytesToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const table = new Array<string>(256);
  for (const b of keep) table[b] = String.fromCharCode(b);
  let extra = 0;
  for (let b = 0; b < 256; b++) if (table[b] === undefined) table[b] = String.fromCharCode(256 + extra++);
  return table;
}

/** The 256 byte characters in the order GPT-2's vocabulary lists them (printable bytes first). */
export function byteAlphabet(): string[] {
  const t = bytesToUnicode();
  const printable = new Set<number>();
  for (let b = 33; b <= 126; b++) printable.add(b);
  for (let b = 161; b <= 172; b++) printable.add(b);
  for (let b = 174; b <= 255; b++) printable.add(b);
  return [...[...printable].map((b) => t[b]!), ...Array.from({ length: 256 }, (_, b) => b).filter((b) => !printable.has(b)).map((b) => t[b]!)];
}

const GPT2_RE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
const DIGITS_RE = /[^\d]+|\d/gu;

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Splits text into byte-level words as the built tokenizer does, dropping the added tokens. */
export class PreTokenizer {
  private readonly added: RegExp | null;
  private readonly table = bytesToUnicode();
  private readonly utf8 = new TextEncoder();

  /** addedTokens: exact strings; addedPattern: a regex source for families of them (e.g. the location tokens) */
  constructor(addedTokens: readonly string[], addedPattern?: string) {
    const sorted = [...addedTokens].sort((a, b) => b.length - a.length);
    const alts = [...(addedPattern ? [addedPattern] : []), ...sorted.map(escapeRe)];
    this.added = alts.length ? new RegExp(alts.join('|'), 'g') : null;
  }

  words(text: string): string[] {
    const out: string[] = [];
    const pieces = this.added ? text.split(this.added) : [text];
    for (const piece of pieces)
      for (const chunk of piece.match(DIGITS_RE) ?? [])
        for (const w of chunk.match(GPT2_RE) ?? []) out.push(Array.from(this.utf8.encode(w), (b) => this.table[b]!).join(''));
    return out;
  }
}

/**
 * Learns up to maxMerges merges from word counts; stops early when no pair occurs minCount times.
 * Returns the merges in rank order.
 */
export function trainBpe(counts: ReadonlyMap<string, number>, maxMerges: number, minCount = 2): [string, string][] {
  const words = [...counts.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([w, c]) => ({ syms: [...w], c }));
  const merges: [string, string][] = [];
  const SEP = '\u0000'; // never a byte-level character
  while (merges.length < maxMerges) {
    const pairs = new Map<string, number>();
    for (const w of words)
      for (let i = 0; i + 1 < w.syms.length; i++) {
        const k = w.syms[i] + SEP + w.syms[i + 1];
        pairs.set(k, (pairs.get(k) ?? 0) + w.c);
      }
    let best: string | null = null;
    let bestCount = 0;
    for (const [k, c] of pairs) if (c > bestCount || (c === bestCount && best !== null && k < best)) [best, bestCount] = [k, c];
    if (best === null || bestCount < minCount) break;
    const [a, b] = best.split(SEP) as [string, string];
    merges.push([a, b]);
    for (const w of words) {
      const s = w.syms;
      if (s.length < 2) continue;
      const next: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(s[i]!);
      }
      w.syms = next;
    }
  }
  return merges;
}
