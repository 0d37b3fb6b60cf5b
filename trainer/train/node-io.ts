// TrainIO on the local file system (Node only; the CLI loads it, the trainer core never does).
import { appendFile, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { TrainIO } from './io.ts';

export class NodeIO implements TrainIO {
  async readText(path: string): Promise<string> {
    return readFile(path, 'utf8');
  }
  async readBytes(path: string): Promise<Uint8Array> {
    return new Uint8Array(await readFile(path));
  }
  async write(path: string, data: Uint8Array | string): Promise<void> {
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.tmp-${process.pid}`;
    await writeFile(tmp, data);
    await rename(tmp, path);
  }
  async append(path: string, text: string): Promise<void> {
    await mkdir(dirname(path), { recursive: true });
    await appendFile(path, text);
  }
  async exists(path: string): Promise<boolean> {
    try {
      await stat(path);
      return true;
    } catch {
      return false;
    }
  }
  async list(dir: string): Promise<string[]> {
    try {
      return await readdir(dir);
    } catch {
      return [];
    }
  }
  async remove(path: string): Promise<void> {
    await rm(path, { recursive: true, force: true });
  }
}
