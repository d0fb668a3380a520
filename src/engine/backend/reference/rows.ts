// Placeholder until this family is written: every kernel throws.
import type { Backend } from '../backend.js';

const missing = (name: string) => () => {
  throw new Error(`vlmkit: reference kernel ${name} is not implemented yet`);
};
export const rowKernels: Pick<Backend, 'embedding' | 'embeddingBackward' | 'indexCopy'> = {
  embedding: missing('embedding'),
  embeddingBackward: missing('embeddingBackward'),
  indexCopy: missing('indexCopy'),
};
