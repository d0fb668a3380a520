// The Idefics3 connector: pixel shuffle (space-to-depth by scale_factor, in transformers' element order) and a
// linear projection without bias into the text model's hidden size (adapters attached to it apply).
import { type Tensor, pixelShuffle } from '../../engine/index.js';
import { applyLinear, tidyGraph } from '../common.js';
import type { ConnectorWeights } from './weights.js';

export class Connector {
  readonly scaleFactor: number;
  readonly w: ConnectorWeights;

  constructor(scaleFactor: number, w: ConnectorWeights) {
    this.scaleFactor = scaleFactor;
    this.w = w;
  }

  /** [N, S, Dv] (S a square) -> [N, S / scale², H] */
  forward(x: Tensor): Tensor {
    return tidyGraph([x], () => applyLinear(pixelShuffle(x, this.scaleFactor), this.w.linear));
  }
}
