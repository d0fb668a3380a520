// The weight formats, mirrored from native/core/formats.h (the one definition; a test checks that the addon's
// weightFormats() agrees with this table). Plain formats hold one value per element and are Tensor dtypes; block
// formats hold groups of values with a scale per group and are stored in a QuantizedWeight (weight.ts).
export type WeightFormat = 'f32' | 'bf16' | 'f16' | 'q8_0' | 'q4_0' | 'nf4';
export type BlockFormat = 'q8_0' | 'q4_0' | 'nf4';
/** Block formats with a codec and kernels. */
export type QuantFormat = BlockFormat;

export interface FormatInfo {
  /** the value of vk::WT in the addon */
  code: number;
  /** values per block (1 for plain formats) */
  blockValues: number;
  /** bytes per block in the packed data (NF4's fp32 absmax is stored apart and not counted) */
  blockBytes: number;
}

export const WEIGHT_FORMATS: Readonly<Record<WeightFormat, FormatInfo>> = {
  f32: { code: 0, blockValues: 1, blockBytes: 4 },
  bf16: { code: 2, blockValues: 1, blockBytes: 2 },
  f16: { code: 3, blockValues: 1, blockBytes: 2 },
  // ggml block_q8_0: fp16 scale d, then 32 int8 q; value = d * q
  q8_0: { code: 16, blockValues: 32, blockBytes: 34 },
  // ggml block_q4_0: fp16 scale, 16 bytes; element j in the low nibble of byte j, j + 16 in the high nibble
  q4_0: { code: 17, blockValues: 32, blockBytes: 18 },
  // bitsandbytes NF4: blocks of 64, two codes per byte (first element in the high nibble), fp32 absmax apart
  nf4: { code: 18, blockValues: 64, blockBytes: 32 },
};

export const QUANT_FORMATS: readonly QuantFormat[] = ['q8_0', 'q4_0', 'nf4'];

export function isBlockFormat(f: string): f is BlockFormat {
  return f === 'q8_0' || f === 'q4_0' || f === 'nf4';
}
