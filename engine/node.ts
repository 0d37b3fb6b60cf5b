// lorafleet's Node entry (the package's `node` condition): the public API (public.ts), with WebGPU
// from Dawn (the `webgpu` package, SwiftShader on GPU-less machines) and local model directories.
import './node-install.ts';

export * from './public.ts';
