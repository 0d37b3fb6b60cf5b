import { WebGPUNotAvailableError, type GpuFeatures, type GpuInfo } from './info.ts';

export { WebGPUNotAvailableError, type GpuFeatures, type GpuInfo };
// GPU acquisition: one function that returns a GPUDevice from navigator.gpu (a page or a
// worker) or from an installed GpuProvider (Node: Dawn, shaders/gpu/dawn.ts, which also falls
// back to SwiftShader on machines without a GPU). This file imports nothing Node-only.

export interface AcquiredGpu {
  device: GPUDevice;
  adapter: GPUAdapter;
  info: GpuInfo;
}

export interface AcquireOptions {
  powerPreference?: GPUPowerPreference;
  /** Ask for shader-f16 when the adapter has it (default true). */
  wantF16?: boolean;
  /** Ask for timestamp-query when the adapter has it (default true). */
  wantTimestamps?: boolean;
  /**
   * Node only: Dawn instance toggles, e.g. ['enable-dawn-features=disable_robustness'].
   * Also read from LORAFLEET_DAWN_FLAGS (comma-separated). They apply when the Dawn instance is
   * first created in the process. Robustness (bounds clamping of every buffer access) stays on
   * by default; turning it off leaves out-of-bounds safety to the kernels' own guards, and its
   * speed effect on SwiftShader measured between 1.5x and none (bench/kernels/README.md).
   */
  dawnFlags?: string[];
}

/**
 * Where navigator.gpu comes from outside a browser. Node's entry ('lorafleet' under the `node`
 * condition, engine/node.ts) installs Dawn here (shaders/gpu/dawn.ts); a browser or worker needs
 * none. Kept as a registry so nothing Node-only is imported by code a browser bundle contains.
 */
export interface GpuProvider {
  readonly backend: GpuInfo['backend'];
  gpu(opts: AcquireOptions): Promise<GPU>;
  /** Help text when the provider's GPU gives no adapter. */
  noAdapterHelp(): string;
  /** Instance flags in effect (Dawn toggles). */
  flags(): string[];
}

let provider: GpuProvider | null = null;

/** Installs (or with null removes) the navigator.gpu provider used by acquireGpu(). */
export function setGpuProvider(p: GpuProvider | null): void {
  provider = p;
}

const inNode = (): boolean =>
  typeof process !== 'undefined' && !!(process as { versions?: { node?: string } }).versions?.node &&
  typeof (globalThis as { window?: unknown }).window === 'undefined';

function noAdapterHelp(): string {
  if (provider) return provider.noAdapterHelp();
  return 'navigator.gpu.requestAdapter() returned null. Enable WebGPU (Chrome/Edge 113+, Safari 26+, or --enable-unsafe-webgpu) or use a GPU-capable machine.';
}

const LIMIT_NAMES = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxUniformBufferBindingSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
] as const;

/** Returns a GPUDevice with the adapter's largest buffer/binding limits and its useful features. */
export async function acquireGpu(opts: AcquireOptions = {}): Promise<AcquiredGpu> {
  let gpu: GPU | undefined;
  if (provider) gpu = await provider.gpu(opts);
  else gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!gpu) {
    const where = inNode()
      ? "Node has no navigator.gpu: import 'lorafleet' (its Node entry installs Dawn, the 'webgpu' package) or call useDawn() from shaders/gpu/dawn.ts first."
      : 'This environment has no navigator.gpu (WebGPU is off or unsupported). ' + noAdapterHelp();
    throw new WebGPUNotAvailableError(where);
  }
  const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  if (!adapter) throw new WebGPUNotAvailableError(noAdapterHelp());

  const has = (f: string) => adapter.features.has(f as GPUFeatureName);
  const requiredFeatures: GPUFeatureName[] = [];
  if (opts.wantF16 !== false && has('shader-f16')) requiredFeatures.push('shader-f16');
  if (has('subgroups')) requiredFeatures.push('subgroups' as GPUFeatureName);
  if (opts.wantTimestamps !== false && has('timestamp-query')) requiredFeatures.push('timestamp-query');

  const requiredLimits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) {
    if (name.startsWith('min')) continue; // alignment limits: keep defaults (asking for better can fail)
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  device.addEventListener('uncapturederror', (ev) => {
    console.error('[lorafleet] uncaptured WebGPU error:', (ev as GPUUncapturedErrorEvent).error.message);
  });

  const ai = adapter.info ?? ({} as GPUAdapterInfo);
  const text = `${ai.vendor ?? ''} ${ai.architecture ?? ''} ${ai.device ?? ''} ${ai.description ?? ''}`.toLowerCase();
  const limits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) limits[name] = (device.limits as unknown as Record<string, number>)[name];
  const info: GpuInfo = {
    vendor: ai.vendor ?? '',
    architecture: ai.architecture ?? '',
    device: ai.device ?? '',
    description: ai.description ?? '',
    backend: provider?.backend ?? 'browser',
    isCpu: /swiftshader|llvmpipe|lavapipe|warp|cpu/.test(text) || (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true,
    features: {
      shaderF16: device.features.has('shader-f16'),
      subgroups: device.features.has('subgroups' as GPUFeatureName),
      timestampQuery: device.features.has('timestamp-query'),
    },
    limits,
    dawnFlags: provider ? provider.flags() : [],
  };
  return { device, adapter, info };
}
