// A training command started by `lorkd launch` (or a scheduler with torchrun's environment): the
// process group is joined before the command runs, and ranks other than 0 get a private scratch
// folder as --out (rank 0 alone writes the run directory the user sees: checkpoints, models,
// results). With --resume the scratch folder starts as a copy of the run directory, so every
// rank resumes from the same checkpoint. docs/DISTRIBUTED.md.
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { distEnv, ProcessGroup } from '../dist/index.js';
import type { DataParallel } from '../experiments/trainer.js';

/** A rank's data parallelism: its group, SyncBatchNorm, and rank 0's run directory (ranks > 0 write to scratch). */
export type RunDist = DataParallel & { sharedOut: string };
import { UserError } from '../tensor/errors.js';

/** The commands that train, and so run data-parallel. */
export const DISTRIBUTED_COMMANDS = new Set(['foundation', 'decompose', 'run', 'compare', 'transfer']);

/** What a training command is told of its data parallelism (null: it runs alone). */
export interface CliRuntime {
  dist: RunDist | null;
}

/**
 * Joins the process group when this process is one rank of several; returns the argv to parse and
 * the run's data parallelism, which the commands hand down as an argument (the launch protocol's
 * environment is read here, once: torchrun's variables, LORKD_SYNC_BN and LORKD_DDP_OVERLAP from lorkd launch).
 */
export function setupDistributed(argv: string[], environ: NodeJS.ProcessEnv = process.env): { argv: string[]; runtime: CliRuntime } {
  const alone = { argv, runtime: { dist: null } };
  // The run's device decides each rank's (cuda:LOCAL_RANK) and the backend (NCCL on CUDA).
  const at = argv.findIndex((a) => a === '--device' || a.startsWith('--device='));
  const device = at < 0 ? (environ.LORKD_DEVICE ?? 'cpu') : argv[at]!.startsWith('--device=') ? argv[at]!.slice(9) : (argv[at + 1] ?? 'cpu');
  const env = distEnv(environ, device);
  if (!env) return alone;
  const command = argv[2] ?? '';
  if (!DISTRIBUTED_COMMANDS.has(command)) return alone;
  if (argv.includes('--help') || argv.includes('-h')) return alone;
  const group = ProcessGroup.init(env);
  const syncBn = environ.LORKD_SYNC_BN === '1';
  const overlap = environ.LORKD_DDP_OVERLAP !== '0';
  const i = argv.findIndex((a) => a === '--out' || a.startsWith('--out='));
  if (i < 0) throw new UserError(`${command} needs --out when run data-parallel`);
  const real = argv[i]!.startsWith('--out=') ? argv[i]!.slice(6) : argv[i + 1];
  if (!real) throw new UserError('--out needs a folder');
  const dist = { group, syncBn, overlap, sharedOut: path.resolve(real) };
  if (env.rank === 0) return { argv, runtime: { dist } };
  const scratch = mkdtempSync(path.join(os.tmpdir(), `lorkd-rank${env.rank}-`));
  process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));
  const mine = path.join(scratch, 'out');
  if (argv.includes('--resume') && existsSync(real)) {
    // Everything but locks, temporary files and the teacher cache's rows (read from rank 0's folder): checkpoints, finished runs.
    cpSync(real, mine, { recursive: true, filter: (src) => !/\.lock$|\.tmp|\.lorkd-tmp|^teacher-cache-.*\.bin$/.test(path.basename(src)) });
  }
  const out = argv.slice();
  if (argv[i]!.startsWith('--out=')) out[i] = `--out=${mine}`;
  else out[i + 1] = mine;
  if (!out.includes('--quiet')) out.push('--quiet');
  return { argv: out, runtime: { dist } };
}
