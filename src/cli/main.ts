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
import { setupDistributed, type CliRuntime } from './distributed.js';
import { registerRun } from './run.js';
import { registerGrow } from './grow.js';
import { registerPack } from './pack.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

function buildProgram(rt: CliRuntime): Command {
  const program = new Command('lorkd')
    .description('Low-Rank Knowledge Decomposition of medical foundation models (CVPR 2024), on libtorch')
    .version(pkg.version)
    .showHelpAfterError();
  registerPipeline(program, rt);
  registerRun(program, rt);
  registerGrow(program, rt);
  registerExport(program);
  registerPredict(program);
  registerServe(program);
  registerApp(program);
  registerTransfer(program, rt);
  registerAnalyze(program);
  registerReport(program);
  registerLaunch(program);
  registerCompare(program, rt);
  registerParams(program);
  registerBench(program);
  registerPack(program);
  return program;
}

// Option parsers (intOption, ...) throw UserErrors while commander parses: same one-line handling.
// A rank of a data-parallel run joins its process group first (src/cli/distributed.ts); its
// commands are given the group as an argument.
await run(async () => {
  const { argv, runtime } = setupDistributed(process.argv);
  await buildProgram(runtime).parseAsync(argv);
});
