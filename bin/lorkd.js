#!/usr/bin/env node
// The lorkd command. The TypeScript is compiled to dist/ by ./bootstrap.sh.
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
// libuv's thread pool decodes JPEGs (sharp) for the data stream and lorkd pack: one thread per core
// (libuv reads this when the pool first starts, after this line).
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, availableParallelism()));
import { fileURLToPath } from 'node:url';
const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  console.error('lorkd is not built: run ./bootstrap.sh in ' + fileURLToPath(new URL('..', import.meta.url)));
  process.exit(1);
}
await import(main.href);
