// The SigLIP vision tower: config, weights as the modules read them, and the transformer. Idefics3 / SmolVLM
// use it as their vision encoder; the contrastive SigLIP model will pair it with a text tower.
export { siglipVisionConfigFromJson, type SiglipVisionConfig, type VisionAct } from './config.js';
export type { Norm, VisionLayerWeights, VisionWeights } from './weights.js';
export { VisionTransformer, patchMaskFromPixelMask, fullPatchMask, visionPositionIds, type PatchMask } from './vision.js';
