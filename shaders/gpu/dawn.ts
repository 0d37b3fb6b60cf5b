// Node only: Dawn (the `webgpu` npm package) as the GpuProvider behind acquireGpu(). On machines
// without a GPU it points the Vulkan loader at SwiftShader (Chromium's CPU Vulkan driver) when
// Debian's chromium is installed. Installed by the Node entry (engine/node.ts); browser bundles
// never import this file.
import { existsSync, readdirSync } from 'node:fs';
import { setGpuProvider, WebGPUNotAvailableError, type AcquireOptions, type GpuProvider } from './device.ts';

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

let nodeGpu: GPU | null = null;
let nodeGpuFlags: string[] = [];

async function dawnGpu(opts: AcquireOptions): Promise<GPU> {
  if (nodeGpu) return nodeGpu;
  // A user's own VK_ICD_FILENAMES always wins. Without one, SwiftShader is used only when
  // it exists; Dawn still prefers a hardware Vulkan adapter if the loader finds one first.
  if (!process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES && existsSync(SWIFTSHADER_ICD)) {
    // A GPU shows up as a DRM render node or an NVIDIA device node; Mesa's ICD files alone
    // (installed with many desktop packages) do not mean there is hardware behind them.
    const hw = (existsSync('/dev/dri') && readdirSync('/dev/dri').some((f) => f.startsWith('renderD'))) || existsSync('/dev/nvidia0');
    if (!hw) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
    // The Vulkan loader complains on stderr when this is unset (headless servers, CI).
    if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = '/tmp';
  }
  let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    mod = (await import('webgpu')) as unknown as typeof mod;
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
  nodeGpuFlags = [...envFlags, ...(opts.dawnFlags ?? [])];
  nodeGpu = mod.create(nodeGpuFlags);
  return nodeGpu;
}

export const dawnProvider: GpuProvider = {
  backend: 'dawn-node',
  gpu: dawnGpu,
  flags: () => [...nodeGpuFlags],
  noAdapterHelp: () =>
    'No WebGPU adapter found by Dawn. On a machine without a GPU install a CPU Vulkan driver: ' +
    `'apt-get install -y chromium libvulkan1' (SwiftShader at ${SWIFTSHADER_ICD} is then used automatically), ` +
    'or set VK_ICD_FILENAMES to a Vulkan ICD JSON. Mesa lavapipe is rejected by Dawn.',
};

/** Makes acquireGpu() (and Runtime.create()) use Dawn. */
export function useDawn(): void {
  setGpuProvider(dawnProvider);
}
