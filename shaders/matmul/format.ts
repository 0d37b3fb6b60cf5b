// How weights sit on the GPU (weights.ts packs them): plain, so public .d.ts files can name it.
export type WeightFormat = 'f32' | 'f16' | 'q8';
