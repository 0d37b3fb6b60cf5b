// What acquireGpu() reports about the adapter, and the error when there is none: plain data with no
// WebGPU types, so the library's public .d.ts files need no @webgpu/types (device.ts re-exports them).
import { LorafleetError } from '../lib/errors.ts';

export class WebGPUNotAvailableError extends LorafleetError {
  constructor(message: string) {
    super(message, 'webgpu_unavailable');
    this.name = 'WebGPUNotAvailableError';
  }
}

export interface GpuFeatures {
  shaderF16: boolean;
  subgroups: boolean;
  timestampQuery: boolean;
}

export interface GpuInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: 'browser' | 'dawn-node';
  /** True when the adapter is a CPU implementation (SwiftShader, WARP, llvmpipe...). */
  isCpu: boolean;
  features: GpuFeatures;
  limits: Record<string, number>;
  /** Dawn instance toggles in effect (Node), e.g. disable_robustness; [] in a browser. */
  dawnFlags: string[];
}
