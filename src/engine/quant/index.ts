// Block-quantized weights: the formats (one table shared with the addon) and the weight type.
export * from './formats.js';
export { QuantizedWeight, quantize, dequantize } from './weight.js';
export { quantizeQ8_0, dequantizeQ8_0, Q8_0_VALUES, Q8_0_BYTES } from './q8_0.js';
