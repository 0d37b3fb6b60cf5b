// Node only: installs Dawn as the WebGPU provider and the Node file-system host. Imported for its
// effect by the Node entry (engine/node.ts), the CLI and the test setup; idempotent.
import * as fs from 'node:fs/promises';
import * as fsSync from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as os from 'node:os';
import { useDawn } from '../shaders/gpu/dawn.ts';
import { setNodeHost } from './host.ts';

setNodeHost({ fs, fsSync, module: { createRequire }, path, os, env: process.env });
useDawn();
