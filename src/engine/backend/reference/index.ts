// The reference backend: every kernel in plain TypeScript, computed in float64 arithmetic. It is the definition
// of each op (tests compare the native backend against it) and runs f64 tensors for finite differences.
import type { Backend } from '../backend.js';
import { jsAllocator } from '../../storage.js';
import { attentionKernels } from './attention.js';
import { elementwiseKernels } from './elementwise.js';
import { layoutKernels } from './layout.js';
import { matmulKernels } from './matmul.js';
import { normKernels } from './norm.js';
import { qmatmulKernels } from './qmatmul.js';
import { optimKernels } from './optim.js';
import { reduceKernels } from './reduce.js';
import { ropeKernels } from './rope.js';
import { rowKernels } from './rows.js';
import { softmaxKernels } from './softmax.js';

export const referenceBackend: Backend = {
  name: 'reference',
  allocator: jsAllocator,
  ...layoutKernels,
  ...elementwiseKernels,
  ...reduceKernels,
  ...matmulKernels,
  ...qmatmulKernels,
  ...softmaxKernels,
  ...normKernels,
  ...ropeKernels,
  ...attentionKernels,
  ...rowKernels,
  ...optimKernels,
};
