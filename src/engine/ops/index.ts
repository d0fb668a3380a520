// Every op, grouped by family. Each op validates its inputs (ShapeError naming the op and the shapes), calls the
// tensor's backend, and records its gradient rule.
export * from './create.js';
export * from './shape.js';
export * from './elementwise.js';
export * from './reduce.js';
export * from './attention.js';
export * from './rope.js';
export * from './matmul.js';
export * from './lora.js';
export * from './mlp.js';
export * from './norm.js';
export * from './softmax.js';
export * from './rows.js';
export * from './optim.js';
export * from './fused.js';
