// Vitest setup (every test file): Dawn as the WebGPU provider and Node's file system, as the
// package's Node entry installs them (engine/node-install.ts).
import '../engine/node-install.ts';
