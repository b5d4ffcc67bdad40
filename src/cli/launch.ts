// lorkd launch: N processes of any training command on c10d (src/dist/launch.ts, docs/DISTRIBUTED.md).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { launch } from '../dist/launch.js';
import { intOption } from './output.js';

export function registerLaunch(program: Command): void {
  program.enablePositionalOptions();
  program
    .command('launch')
    .description('run a training command (foundation, decompose, compare, transfer) data-parallel in N processes (c10d: Gloo on CPU, NCCL on GPUs)')
    .option('--nproc <n>', 'processes on this node', intOption('nproc', 1), 2)
    .option('--nnodes <m>', 'nodes in the run', intOption('nnodes', 1), 1)
    .option('--node-rank <k>', 'index of this node', intOption('node-rank', 0), 0)
    .option('--master-addr <host>', 'address of node 0 (the rendezvous store)', '127.0.0.1')
    .option('--master-port <p>', 'port of the rendezvous store on node 0', intOption('master-port', 1), 29500)
    .option('--sync-bn', 'all-reduce BatchNorm statistics over the ranks (SyncBatchNorm; default: per-rank statistics, as DDP)')
    .option('--no-overlap', "all-reduce the gradients once after backward instead of while it runs (DDP's Reducer); for measuring the overlap")
    .option('--timeout <s>', 'seconds a rank waits for a peer before the run fails', intOption('timeout', 1), 120)
    .argument('<command...>', 'the lorkd command and its options')
    .passThroughOptions()
    .allowUnknownOption()
    .action(async (command: string[], o) => {
      const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/lorkd.js');
      const code = await launch({
        syncBn: !!o.syncBn, overlap: o.overlap !== false, nproc: o.nproc, nnodes: o.nnodes, nodeRank: o.nodeRank, masterAddr: o.masterAddr, masterPort: o.masterPort, timeoutS: o.timeout,
        argv: [process.execPath, bin, ...command], log: (l) => console.error(l),
      });
      process.exitCode = code;
    });
}
