import { LorafleetError } from '../lib/errors.ts';
// GPU acquisition: one function that returns a GPUDevice in the browser (navigator.gpu)
// and in Node (the `webgpu` package, which is Dawn). On machines without a GPU, Node falls
// back to SwiftShader (Chromium's CPU Vulkan driver) when Debian's chromium is installed.

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

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

const isNode =
  typeof process !== 'undefined' && !!(process as { versions?: { node?: string } }).versions?.node &&
  typeof (globalThis as { window?: unknown }).window === 'undefined';

let nodeGpu: GPU | null = null;
let nodeGpuFlags: string[] = [];

async function nodeNavigatorGpu(dawnFlags: string[] = []): Promise<GPU> {
  if (nodeGpu) return nodeGpu;
  const fs = await import(/* @vite-ignore */ 'node:fs');
  // A user's own VK_ICD_FILENAMES always wins. Without one, SwiftShader is used only when
  // it exists; Dawn still prefers a hardware Vulkan adapter if the loader finds one first.
  if (!process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES && fs.existsSync(SWIFTSHADER_ICD)) {
    // A GPU shows up as a DRM render node or an NVIDIA device node; Mesa's ICD files alone
    // (installed with many desktop packages) do not mean there is hardware behind them.
    const hw =
      (fs.existsSync('/dev/dri') && fs.readdirSync('/dev/dri').some((f: string) => f.startsWith('renderD'))) ||
      fs.existsSync('/dev/nvidia0');
    if (!hw) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
    // The Vulkan loader complains on stderr when this is unset (headless servers, CI).
    if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = '/tmp';
  }
  const modName = 'webgpu';
  let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    mod = await import(/* @vite-ignore */ modName);
  } catch (e) {
    throw new WebGPUNotAvailableError(
      `The 'webgpu' npm package (Dawn for Node) could not be loaded: ${(e as Error).message}. Run 'npm install webgpu'.`,
    );
  }
  // Dawn's GPUBufferUsage / GPUMapMode / GPUShaderStage constants, as a browser has them.
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  const envFlags = (process.env.LORAFLEET_DAWN_FLAGS ?? '').split(',').map((f) => f.trim()).filter(Boolean);
  nodeGpuFlags = [...envFlags, ...dawnFlags];
  nodeGpu = mod.create(nodeGpuFlags);
  return nodeGpu;
}

function noAdapterHelp(): string {
  if (!isNode) {
    return 'navigator.gpu.requestAdapter() returned null. Enable WebGPU (Chrome/Edge 113+, or --enable-unsafe-webgpu) or use a GPU-capable machine.';
  }
  return (
    'No WebGPU adapter found by Dawn. On a machine without a GPU install a CPU Vulkan driver: ' +
    "'apt-get install -y chromium libvulkan1' (SwiftShader at " +
    SWIFTSHADER_ICD +
    ' is then used automatically), or set VK_ICD_FILENAMES to a Vulkan ICD JSON. ' +
    'Mesa lavapipe is rejected by Dawn.'
  );
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
  if (isNode) gpu = await nodeNavigatorGpu(opts.dawnFlags);
  else gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!gpu) throw new WebGPUNotAvailableError('This environment has no navigator.gpu. ' + noAdapterHelp());
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
    backend: isNode ? 'dawn-node' : 'browser',
    isCpu: /swiftshader|llvmpipe|lavapipe|warp|cpu/.test(text) || (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true,
    features: {
      shaderF16: device.features.has('shader-f16'),
      subgroups: device.features.has('subgroups' as GPUFeatureName),
      timestampQuery: device.features.has('timestamp-query'),
    },
    limits,
    dawnFlags: isNode ? [...nodeGpuFlags] : [],
  };
  return { device, adapter, info };
}
