// The SigLIP vision tower's weights as the modules read them (the HF-name map that fills them is the owning
// model's: src/models/idefics3/weights.ts for Idefics3 / SmolVLM).
import type { Tensor } from '../../engine/index.js';
import type { Linear } from '../common.js';

export interface Norm {
  w: Tensor;
  b: Tensor | null;
}

export interface VisionLayerWeights {
  ln1: Norm;
  q: Linear;
  k: Linear;
  v: Linear;
  out: Linear;
  ln2: Norm;
  fc1: Linear;
  fc2: Linear;
}
export interface VisionWeights {
  /** the patch conv [D, C, p, p] (read as a [D, C·p·p] linear) and its bias [D] */
  patch: Linear<Tensor>;
  /** [num_patches, D] */
  posEmbed: Tensor;
  layers: VisionLayerWeights[];
  post: Norm;
}
