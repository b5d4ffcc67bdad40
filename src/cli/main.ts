// The lorkd command line.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerParams } from './params.js';
import { registerBench } from './bench.js';
import { registerCompare } from './compare.js';
import { run } from './output.js';
import { registerPipeline } from './pipeline.js';
import { registerExport } from './export.js';
import { registerPredict } from './predict.js';
import { registerServe } from './serve.js';
import { registerApp } from './app.js';
import { registerTransfer } from './transfer.js';
import { registerAnalyze } from './analyze.js';
import { registerReport } from './report.js';
import { registerLaunch } from './launch.js';
import { setupDistributed } from './distributed.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('lorkd')
  .description('Low-Rank Knowledge Decomposition of medical foundation models (CVPR 2024), on libtorch')
  .version(pkg.version)
  .showHelpAfterError();
registerPipeline(program);
registerExport(program);
registerPredict(program);
registerServe(program);
registerApp(program);
registerTransfer(program);
registerAnalyze(program);
registerReport(program);
registerLaunch(program);
registerCompare(program);
registerParams(program);
registerBench(program);
// Option parsers (intOption, ...) throw UserErrors while commander parses: same one-line handling.
// A rank of a data-parallel run joins its process group first (src/cli/distributed.ts).
await run(() => program.parseAsync(setupDistributed(process.argv)).then(() => undefined));
