// A small RGB rasterizer in plain TypeScript, so that the same seed gives the same pixels on every machine (no
// native canvas, no system fonts). Shapes are filled with antialiasing by coverage: each pixel row is sampled on
// SUBROWS horizontal lines, and along each line the exact horizontal overlap of the shape's spans with the pixel
// is added. Full coverage is exactly 1, so an object's interior has exactly its colour.
import type { Rng } from './rng.js';

export type Rgb = readonly [number, number, number];

/** Where a shape lies, in continuous pixel coordinates (pixel (x, y) covers [x, x+1) x [y, y+1)). */
export interface Bounds {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** Something fillable: its bounds and, for a horizontal line at y, the x-intervals inside it. */
export interface Shape {
  bounds(): Bounds;
  /** Appends sorted, disjoint pairs x_a, x_b (a < b) of the line y inside the shape. */
  spans(y: number, out: number[]): void;
}

const SUBROWS = 4;

export type Point = readonly [number, number];

/** A simple polygon (no self-intersections), filled even-odd. */
export class Polygon implements Shape {
  private readonly pts: Point[];
  constructor(pts: readonly Point[]) {
    this.pts = pts.slice();
  }

  get points(): readonly Point[] {
    return this.pts;
  }

  bounds(): Bounds {
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const [x, y] of this.pts) {
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
    return { x0, y0, x1, y1 };
  }

  /** Shoelace area. */
  area(): number {
    let a = 0;
    const p = this.pts;
    for (let i = 0; i < p.length; i++) {
      const [x0, y0] = p[i]!;
      const [x1, y1] = p[(i + 1) % p.length]!;
      a += x0 * y1 - x1 * y0;
    }
    return Math.abs(a) / 2;
  }

  spans(y: number, out: number[]): void {
    const p = this.pts;
    const xs: number[] = [];
    for (let i = 0; i < p.length; i++) {
      const [ax, ay] = p[i]!;
      const [bx, by] = p[(i + 1) % p.length]!;
      // half-open in y, so a vertex on the line is counted once
      if ((ay <= y && y < by) || (by <= y && y < ay)) xs.push(ax + ((y - ay) * (bx - ax)) / (by - ay));
    }
    xs.sort((a, b) => a - b);
    for (let i = 0; i + 1 < xs.length; i += 2) if (xs[i + 1]! > xs[i]!) out.push(xs[i]!, xs[i + 1]!);
  }
}

export class Ellipse implements Shape {
  constructor(
    readonly cx: number,
    readonly cy: number,
    readonly rx: number,
    readonly ry: number,
  ) {}

  bounds(): Bounds {
    return { x0: this.cx - this.rx, y0: this.cy - this.ry, x1: this.cx + this.rx, y1: this.cy + this.ry };
  }

  area(): number {
    return Math.PI * this.rx * this.ry;
  }

  spans(y: number, out: number[]): void {
    const t = (y - this.cy) / this.ry;
    if (t <= -1 || t >= 1) return;
    const h = this.rx * Math.sqrt(1 - t * t);
    out.push(this.cx - h, this.cx + h);
  }
}

export function rect(x0: number, y0: number, x1: number, y1: number): Polygon {
  return new Polygon([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]);
}

/** A straight stroke of the given width from a to b (square ends). */
export function segment(a: Point, b: Point, width: number): Polygon {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const len = Math.hypot(dx, dy) || 1;
  const nx = (-dy / len) * (width / 2);
  const ny = (dx / len) * (width / 2);
  return new Polygon([[a[0] + nx, a[1] + ny], [b[0] + nx, b[1] + ny], [b[0] - nx, b[1] - ny], [a[0] - nx, a[1] - ny]]);
}

/** RGB pixels, row-major, 3 bytes a pixel. */
export class Canvas {
  readonly data: Uint8Array;
  private readonly cov: Float64Array;
  private readonly spanBuf: number[] = [];

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.data = new Uint8Array(width * height * 3);
    this.cov = new Float64Array(width);
  }

  clear(c: Rgb): void {
    const d = this.data;
    for (let i = 0; i < d.length; i += 3) {
      d[i] = c[0];
      d[i + 1] = c[1];
      d[i + 2] = c[2];
    }
  }

  /** A linear gradient from c0 to c1 along the unit direction (dx, dy). */
  gradient(c0: Rgb, c1: Rgb, dx: number, dy: number): void {
    const { width: w, height: h } = this;
    // project the corners to find the range of t
    const ts = [0, (w - 1) * dx, (h - 1) * dy, (w - 1) * dx + (h - 1) * dy];
    const lo = Math.min(...ts);
    const span = Math.max(...ts) - lo || 1;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const t = (x * dx + y * dy - lo) / span;
        const i = (y * w + x) * 3;
        for (let k = 0; k < 3; k++) this.data[i + k] = Math.round(c0[k]! + (c1[k]! - c0[k]!) * t);
      }
    }
  }

  /** Adds uniform noise in [-amp, amp] to every channel (grey noise: the same offset for r, g and b). */
  noise(rng: Rng, amp: number): void {
    const d = this.data;
    for (let i = 0; i < d.length; i += 3) {
      const n = rng.int(-amp, amp);
      for (let k = 0; k < 3; k++) d[i + k] = Math.min(255, Math.max(0, d[i + k]! + n));
    }
  }

  /** Fills a shape with colour c, antialiased by coverage. */
  fill(shape: Shape, c: Rgb): void {
    const b = shape.bounds();
    const { width: w, height: h, cov } = this;
    const ya = Math.max(0, Math.floor(b.y0));
    const yb = Math.min(h - 1, Math.ceil(b.y1));
    const xa = Math.max(0, Math.floor(b.x0));
    const xb = Math.min(w - 1, Math.ceil(b.x1));
    if (ya > yb || xa > xb) return;
    const spans = this.spanBuf;
    const share = 1 / SUBROWS;
    for (let py = ya; py <= yb; py++) {
      cov.fill(0, xa, xb + 1);
      let any = false;
      for (let k = 0; k < SUBROWS; k++) {
        spans.length = 0;
        shape.spans(py + (k + 0.5) / SUBROWS, spans);
        for (let s = 0; s + 1 < spans.length; s += 2) {
          const a = Math.max(0, spans[s]!);
          const e = Math.min(w, spans[s + 1]!);
          if (e <= a) continue;
          any = true;
          const ia = Math.floor(a);
          const ie = Math.floor(e);
          if (ia === ie) {
            cov[ia] = cov[ia]! + (e - a) * share;
            continue;
          }
          cov[ia] = cov[ia]! + (ia + 1 - a) * share;
          for (let x = ia + 1; x < ie; x++) cov[x] = cov[x]! + share;
          if (ie < w) cov[ie] = cov[ie]! + (e - ie) * share;
        }
      }
      if (!any) continue;
      for (let x = xa; x <= xb; x++) {
        const a = cov[x]!;
        if (a <= 0) continue;
        const i = (py * w + x) * 3;
        if (a >= 1) {
          this.data[i] = c[0];
          this.data[i + 1] = c[1];
          this.data[i + 2] = c[2];
        } else {
          for (let k = 0; k < 3; k++) this.data[i + k] = Math.round(this.data[i + k]! + (c[k]! - this.data[i + k]!) * a);
        }
      }
    }
  }

  /** Sets whole pixels (no antialiasing): for the bitmap font. */
  block(x: number, y: number, w: number, h: number, c: Rgb): void {
    for (let yy = Math.max(0, y); yy < Math.min(this.height, y + h); yy++) {
      for (let xx = Math.max(0, x); xx < Math.min(this.width, x + w); xx++) {
        const i = (yy * this.width + xx) * 3;
        this.data[i] = c[0];
        this.data[i + 1] = c[1];
        this.data[i + 2] = c[2];
      }
    }
  }

  pixel(x: number, y: number): [number, number, number] {
    const i = (y * this.width + x) * 3;
    return [this.data[i]!, this.data[i + 1]!, this.data[i + 2]!];
  }

  /** RGBA copy for PNG encoders. */
  rgba(): Buffer {
    const n = this.width * this.height;
    const out = Buffer.alloc(n * 4);
    for (let p = 0; p < n; p++) {
      out[p * 4] = this.data[p * 3]!;
      out[p * 4 + 1] = this.data[p * 3 + 1]!;
      out[p * 4 + 2] = this.data[p * 3 + 2]!;
      out[p * 4 + 3] = 255;
    }
    return out;
  }
}
