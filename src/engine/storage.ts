// A Storage is one buffer shared by a tensor and its views. Views retain it; the buffer is released when the
// last holder disposes (deterministic, no waiting for the GC). Native buffers are freed through the addon;
// JS buffers are simply dropped.
import { BYTES, type DType, type TypedArray, viewOf } from './dtype.js';

export interface Allocator {
  /** An uninitialised (or zeroed) buffer of `bytes` bytes. */
  alloc(bytes: number, zero: boolean): ArrayBuffer;
  /** Releases a buffer made by alloc; must detach it so no view can read freed memory. */
  free(buffer: ArrayBuffer): void;
}

export const jsAllocator: Allocator = {
  alloc: (bytes) => new ArrayBuffer(bytes),
  free: () => {},
};

let liveBytes = 0;
let liveCount = 0;
let peakBytes = 0;
/** Bytes and buffers currently held by undisposed storages (for leak tests). */
export function storageStats(): { bytes: number; count: number } {
  return { bytes: liveBytes, count: liveCount };
}

/** The most bytes held at once since the last reset (memory benches); reset starts over from what is live now. */
export function storagePeak(reset = false): number {
  const p = peakBytes;
  if (reset) peakBytes = liveBytes;
  return p;
}

export class Storage {
  readonly buffer: ArrayBuffer;
  readonly dtype: DType;
  /** element count */
  readonly length: number;
  readonly data: TypedArray;
  private refs = 1;
  private readonly allocator: Allocator | null;
  private readonly counted: number;

  constructor(dtype: DType, length: number, allocator: Allocator | null, buffer?: ArrayBuffer, byteOffset = 0, zero = false) {
    this.dtype = dtype;
    this.length = length;
    this.allocator = buffer ? null : allocator;
    this.buffer = buffer ?? allocator!.alloc(Math.max(length * BYTES[dtype], 1), zero);
    this.data = viewOf(dtype, this.buffer, byteOffset, length);
    this.counted = buffer ? 0 : length * BYTES[dtype];
    liveBytes += this.counted;
    if (liveBytes > peakBytes) peakBytes = liveBytes;
    liveCount++;
  }

  /** Whether the backend's allocator made this buffer (and frees it): not a wrapped caller-owned array. */
  get owned(): boolean {
    return this.allocator !== null;
  }

  get disposed(): boolean {
    return this.refs <= 0;
  }

  retain(): void {
    if (this.refs <= 0) throw new Error('vlmkit: use of a disposed tensor');
    this.refs++;
  }

  release(): void {
    if (this.refs <= 0) return;
    if (--this.refs === 0) {
      liveBytes -= this.counted;
      liveCount--;
      this.allocator?.free(this.buffer);
    }
  }
}
