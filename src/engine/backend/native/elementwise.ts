// Placeholder until this family is written: every kernel throws.
import type { Backend } from '../backend.js';

const missing = (name: string) => () => {
  throw new Error(`vlmkit: native kernel ${name} is not implemented yet`);
};
export const elementwiseKernels: Pick<Backend, 'unary' | 'unaryBackward' | 'binary'> = {
  unary: missing('unary'),
  unaryBackward: missing('unaryBackward'),
  binary: missing('binary'),
};
