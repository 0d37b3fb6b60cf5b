// Model loading: config, safetensors, sources (local / hub + cache), weights, tokenizer.
export * from './config.ts';
export * from './dtype.ts';
export * from './safetensors.ts';
export * from './source.ts';
export * from './weights.ts';
export * from './tokenizer.ts';
