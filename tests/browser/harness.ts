// Starts a Vite dev server for the repo on loopback and headless Chromium with WebGPU
// (SwiftShader on machines without a GPU) for the browser test suites.
import { createServer, type Plugin, type ViteDevServer } from 'vite';
import { chromium, type Browser, type Page } from 'playwright-core';
import { existsSync, statSync, createReadStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface BrowserEnv {
  server: ViteDevServer;
  browser: Browser;
  page: Page;
  baseUrl: string;
  close(): Promise<void>;
}

/**
 * Serves local model directories in the Hugging Face URL layout, as a hub would:
 * `/hub/{owner}/{name}/resolve/{revision}/{file}` (GET and HEAD, byte ranges, 404 for missing files).
 */
export function hubPlugin(repos: Record<string, string>): Plugin {
  return {
    name: 'lorafleet-test-hub',
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const m = /^\/hub\/([\w.-]+\/[\w.-]+)\/resolve\/[^/]+\/([\w.-]+)$/.exec((req.url ?? '').split('?')[0]);
        if (!m) return next();
        const dir = repos[m[1]];
        const file = dir ? join(dir, m[2]) : '';
        if (!dir || !existsSync(file)) {
          res.statusCode = 404;
          return res.end('Entry not found');
        }
        const size = statSync(file).size;
        let start = 0;
        let end = size - 1;
        const range = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ''));
        if (range) {
          start = Number(range[1]);
          end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
          res.statusCode = 206;
          res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
        }
        res.setHeader('Accept-Ranges', 'bytes');
        res.setHeader('Content-Length', String(end - start + 1));
        res.setHeader('Content-Type', 'application/octet-stream');
        if (req.method === 'HEAD') return res.end();
        createReadStream(file, { start, end }).pipe(res);
      });
    },
  };
}

export async function openBrowserPage(path: string, opts: { hub?: Record<string, string> } = {}): Promise<BrowserEnv> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: run 'apt-get install -y chromium' (or set CHROMIUM_PATH).`);
  }
  const server = await createServer({
    root: REPO_ROOT,
    configFile: false,
    logLevel: 'error',
    // Test pages may fetch the shared test models (../shared) through /@fs/.
    server: { host: '127.0.0.1', port: 0, strictPort: false, fs: { allow: [join(REPO_ROOT, '..')] }, hmr: false },
    // CommonJS packages that product code imports must be pre-bundled (dev server serves ESM only).
    optimizeDeps: { noDiscovery: true, include: ['ajv'] },
    plugins: opts.hub ? [hubPlugin(opts.hub)] : [],
    // Test pages import the library by its package name, as a user's app does, from the sources.
    resolve: {
      alias: [
        { find: /^lorafleet\/worker$/, replacement: join(REPO_ROOT, 'trainer/worker/worker.ts') },
        { find: /^lorafleet\/router$/, replacement: join(REPO_ROOT, 'router/index.ts') },
        { find: /^lorafleet$/, replacement: join(REPO_ROOT, 'engine/index.ts') },
      ],
    },
    worker: { format: 'es' },
  });
  await server.listen();
  const addr = server.httpServer!.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const baseUrl = `http://127.0.0.1:${port}`;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--enable-unsafe-webgpu',
      '--enable-features=Vulkan',
      '--use-angle=swiftshader',
      '--use-webgpu-adapter=swiftshader',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(`${baseUrl}${path}`);
  return {
    server,
    browser,
    page,
    baseUrl,
    async close() {
      await browser.close();
      await server.close();
    },
  };
}
