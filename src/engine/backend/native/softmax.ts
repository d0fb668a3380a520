// Placeholder until this family is written: every kernel throws.
import type { Backend } from '../backend.js';

const missing = (name: string) => () => {
  throw new Error(`vlmkit: native kernel ${name} is not implemented yet`);
};
export const softmaxKernels: Pick<Backend, 'softmax' | 'logSoftmax' | 'softmaxBackward' | 'logSoftmaxBackward' | 'crossEntropy' | 'crossEntropyBackward'> = {
  softmax: missing('softmax'),
  logSoftmax: missing('logSoftmax'),
  softmaxBackward: missing('softmaxBackward'),
  logSoftmaxBackward: missing('logSoftmaxBackward'),
  crossEntropy: missing('crossEntropy'),
  crossEntropyBackward: missing('crossEntropyBackward'),
};
