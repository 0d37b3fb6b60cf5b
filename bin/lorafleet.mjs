#!/usr/bin/env node
// lorafleet CLI entry. In the installed package it runs the compiled dist/cli/main.js (plain
// Node, no loader). In a clone of the repository the sources sit beside it and win (through
// tsx, a dev dependency), so an edit takes effect without a rebuild.
import { existsSync } from 'node:fs';

const sources = new URL('../cli/main.ts', import.meta.url);
let main;
if (existsSync(sources)) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import(sources.href));
} else {
  ({ main } = await import('../dist/cli/main.js'));
}
process.exitCode = await main(process.argv.slice(2));
