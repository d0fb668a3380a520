// Placeholder until this family is written: every kernel throws.
import type { Backend } from '../backend.js';

const missing = (name: string) => () => {
  throw new Error(`vlmkit: native kernel ${name} is not implemented yet`);
};
export const optimKernels: Pick<Backend, 'adamw'> = {
  adamw: missing('adamw'),
};
