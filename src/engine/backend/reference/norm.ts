// Placeholder until this family is written: every kernel throws.
import type { Backend } from '../backend.js';

const missing = (name: string) => () => {
  throw new Error(`vlmkit: reference kernel ${name} is not implemented yet`);
};
export const normKernels: Pick<Backend, 'layerNorm' | 'layerNormBackward' | 'rmsNorm' | 'rmsNormBackward'> = {
  layerNorm: missing('layerNorm'),
  layerNormBackward: missing('layerNormBackward'),
  rmsNorm: missing('rmsNorm'),
  rmsNormBackward: missing('rmsNormBackward'),
};
