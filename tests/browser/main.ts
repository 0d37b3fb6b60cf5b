// The page side of the browser suite: the same kernel checks as in Node, on the page's WebGPU.
import { Runtime } from '../../shaders/gpu/runtime.ts';
import { allChecks } from '../helpers/all-checks.ts';

export interface BrowserCheckOutcome {
  maxRelErr: number;
  bound: number;
  detail?: string;
  gpuError?: string;
}

declare global {
  interface Window {
    __lorafleet?: {
      ready: Promise<{ adapter: string; features: Record<string, boolean> }>;
      runCheck(name: string): Promise<BrowserCheckOutcome>;
    };
  }
}

const log = document.getElementById('log')!;
const rtPromise = Runtime.create();

window.__lorafleet = {
  ready: rtPromise.then((rt) => {
    log.textContent = `WebGPU: ${rt.info.description} (${rt.info.vendor} ${rt.info.architecture})`;
    return { adapter: `${rt.info.vendor} ${rt.info.architecture} ${rt.info.description}`, features: { ...rt.info.features } };
  }),
  async runCheck(name) {
    const rt = await rtPromise;
    const check = allChecks.find((c) => c.name === name);
    if (!check) throw new Error(`no check named ${name}`);
    rt.device.pushErrorScope('validation');
    const r = await check.run(rt);
    const err = await rt.device.popErrorScope();
    return { ...r, gpuError: err?.message };
  },
};
