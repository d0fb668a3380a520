// Block-quantized weights: the formats (one table shared with the addon) and the weight type.
export * from './formats.js';
export { int8ActivationsNow, setInt8Activations, withExactActivations } from './activations.js';
export { QuantizedWeight, quantize, dequantize, type QuantOptions } from './weight.js';
export { quantizeQ8_0, dequantizeQ8_0, Q8_0_VALUES, Q8_0_BYTES } from './q8_0.js';
export { quantizeQ4_0, dequantizeQ4_0, Q4_0_VALUES, Q4_0_BYTES } from './q4_0.js';
export { quantizeNF4, dequantizeNF4, nf4Absmax, nf4Layout, nf4Code, NF4_CODE, NF4_VALUES, NF4_DQ_BLOCK, DYNAMIC_MAP, type Nf4Layout } from './nf4.js';
