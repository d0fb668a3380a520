// A caching allocator over the addon's aligned buffers, as PyTorch's: creating an external ArrayBuffer costs
// ~10 µs (V8 bookkeeping), and decoding one token makes hundreds of short-lived tensors, so released buffers go
// to per-size free lists and are handed out again. Sizes are rounded up to quarter-powers of two (at most 25%
// slack). The cache is bounded; emptyCache() returns everything to the system.
//
// Large buffers (largeBytes and more: the addon maps them on their own, glue/memory.cc) are also given back on a
// miss: before a new large buffer is made, idle buffers of cold large classes (none of that class made in the
// last coldAfter large allocations), least recently used first, are freed until as many bytes are gone.
// Size-class reuse otherwise holds every class a phase of the work ever used: a training step's vision layers,
// text layers and logits each leave their classes idle while the next phase makes its own, and peak memory becomes
// the sum of the phases rather than the largest one (1-tile QLoRA step: 47 MB idle at the engine's peak, 219 MB
// after the step). Only cold classes go: a layer loop whose live set grows (each layer keeps its output for the
// backward) misses every layer, and freeing the loop's own idle temporaries there made them miss in turn, 615
// mappings (823 MB) a step and 10-15% slower steps. With coldAfter 16 the step makes ~40 mappings (~120 MB); a
// loop that makes the same sizes again (layer after layer, token after token) hits and frees nothing.
import type { Allocator } from '../../storage.js';

export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(bytes));
  const q = p / 4;
  return Math.ceil(bytes / q) * q;
}

export class CachingAllocator implements Allocator {
  private readonly free_ = new Map<number, ArrayBuffer[]>();
  private cachedBytes = 0;
  constructor(
    private readonly raw: { alloc(bytes: number, zero: boolean): ArrayBuffer; free(b: ArrayBuffer): void },
    /** upper bound of bytes kept for reuse */
    public limit = 512 * 1024 * 1024,
    /** buffers from this size on are given back on a miss (the addon's own mappings, glue/memory.cc kMapBytes) */
    public largeBytes = 256 * 1024,
    /** a large class is cold (its idle buffers may go on a miss) after this many large allocations without it */
    public coldAfter = 16,
  ) {}

  /** large allocations so far (hits and misses): the clock of coldAfter */
  private tick = 0;
  private readonly lastUse = new Map<number, number>();

  alloc(bytes: number, zero: boolean): ArrayBuffer {
    const cls = sizeClass(bytes);
    if (cls >= this.largeBytes) this.lastUse.set(cls, ++this.tick);
    const list = this.free_.get(cls);
    const b = list?.pop();
    if (b) {
      this.cachedBytes -= cls;
      // Keep recently used classes at the end of the map: eviction takes the least recently used first.
      this.free_.delete(cls);
      if (list!.length) this.free_.set(cls, list!);
      if (zero) new Uint8Array(b, 0, bytes).fill(0);
      return b;
    }
    if (cls >= this.largeBytes) this.releaseIdleLarge(cls);
    return this.raw.alloc(cls, zero);
  }

  /** Frees idle buffers of cold large classes, least recently used first, until `bytes` are freed or none is left. */
  private releaseIdleLarge(bytes: number): void {
    let freed = 0;
    for (const [c, l] of this.free_) {
      if (freed >= bytes) break;
      if (c < this.largeBytes || this.tick - (this.lastUse.get(c) ?? 0) < this.coldAfter) continue;
      while (l.length && freed < bytes) {
        this.raw.free(l.pop()!);
        this.cachedBytes -= c;
        freed += c;
      }
      if (!l.length) this.free_.delete(c);
    }
  }

  free(buffer: ArrayBuffer): void {
    const cls = buffer.byteLength;
    if (cls === 0) return;
    if (cls > this.limit) {
      this.raw.free(buffer);
      return;
    }
    // Over the limit, evict the least recently used classes rather than refusing this buffer: a cache full of
    // sizes the program no longer makes would otherwise send every new size back to the system (page faults on
    // every use of a large buffer).
    for (const [c, l] of this.free_) {
      if (this.cachedBytes + cls <= this.limit) break;
      while (l.length && this.cachedBytes + cls > this.limit) {
        this.raw.free(l.pop()!);
        this.cachedBytes -= c;
      }
      if (!l.length) this.free_.delete(c);
    }
    let list = this.free_.get(cls);
    if (list) this.free_.delete(cls);
    else list = [];
    this.free_.set(cls, list);
    list.push(buffer);
    this.cachedBytes += cls;
  }

  /** Frees every cached buffer now. */
  emptyCache(): void {
    for (const list of this.free_.values()) for (const b of list) this.raw.free(b);
    this.free_.clear();
    this.cachedBytes = 0;
  }

  get cached(): number {
    return this.cachedBytes;
  }
}
