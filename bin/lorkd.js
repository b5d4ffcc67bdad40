#!/usr/bin/env node
// The lorkd command. The TypeScript is compiled to dist/ by ./bootstrap.sh.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  console.error('lorkd is not built: run ./bootstrap.sh in ' + fileURLToPath(new URL('..', import.meta.url)));
  process.exit(1);
}
await import(main.href);
