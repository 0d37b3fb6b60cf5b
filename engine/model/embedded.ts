// The embedded default model: Andrej Karpathy's stories260K (llama2.c, MIT; ./embedded/stories260K/
// holds the files, their README and LICENSE). `createEngine({})` and `lorafleet generate` without
// --model run it, so the package works with nothing beside it.
//
// Each file is named by a literal `new URL('./…', import.meta.url)`: Node reads them from the
// package directory; bundlers (Vite, webpack 5, esbuild with a loader) emit them as assets and
// rewrite the URLs, so a page or a worker fetches them from wherever the app is served.
import { LocalDirSource, UrlFilesSource, type ModelSource } from './source.ts';

export const EMBEDDED_MODEL_NAME = 'stories260K';

function embeddedFiles(): Record<string, URL> {
  return {
    'config.json': new URL('./embedded/stories260K/config.json', import.meta.url),
    'generation_config.json': new URL('./embedded/stories260K/generation_config.json', import.meta.url),
    'model.safetensors': new URL('./embedded/stories260K/model.safetensors', import.meta.url),
    'tokenizer.json': new URL('./embedded/stories260K/tokenizer.json', import.meta.url),
    'tokenizer_config.json': new URL('./embedded/stories260K/tokenizer_config.json', import.meta.url),
  };
}

/** A file: URL's path (POSIX and Windows drive paths), without node:url. */
function filePath(u: URL): string {
  const p = decodeURIComponent(u.pathname);
  return /^\/[A-Za-z]:\//.test(p) ? p.slice(1) : p;
}

/** The embedded stories260K as a ModelSource: its directory in Node, its (bundled) URLs elsewhere. */
export function embeddedModelSource(): ModelSource {
  const files = embeddedFiles();
  const config = files['config.json']!;
  if (config.protocol === 'file:') {
    const dir = filePath(new URL('.', config));
    return new LocalDirSource(dir.replace(/\/$/, ''), EMBEDDED_MODEL_NAME);
  }
  return new UrlFilesSource(EMBEDDED_MODEL_NAME, files);
}
