// Native rotary embedding (native/kernels/rope.cc). x may be a strided view with unit stride on its last axis
// (e.g. a [B, T, H, D] projection permuted to [B, H, T, D]); the result is contiguous [B, H, T, D].
import type { Backend } from '../backend.js';
import { addon, base, empty, requireF32, withContiguous } from './util.js';

export const ropeKernels: Pick<Backend, 'rope'> = {
  rope(x, positions, invFreq, inverse) {
    requireF32('rope', x, invFreq);
    const [B, H, T, D] = x.shape;
    const out = empty(x, x.shape);
    if (!out.size) return out;
    const inPlace = (D <= 1 || x.strides[3] === 1) && x.strides.every((s) => s >= 0);
    withContiguous([inPlace ? null : x, positions, invFreq], (xc, pc, fc) => {
      const xv = xc ?? x;
      addon.rope([B, H, T, D], base(xv), [xv.strides[0], xv.strides[1], xv.strides[2]], pc.data, pc.dtype === 'i64', fc.data, inverse, out.data);
    });
    return out;
  },
};
